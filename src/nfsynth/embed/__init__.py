"""Flow embeddings and anomaly detection (the embed stage, workflow/rules/embed.smk).

Modules:

- ``encoding``: ``FlowEncoder`` (vocabularies and standardisation fitted on the training split;
  window-context summary), ``EncodedFlows``.
- ``nets``: ``FlowAutoencoder`` (entity embeddings, shallow/deep, plain or variational).
- ``autoencoder``: the grid of autoencoders and its job (curves, ``ae_recon``, embeddings,
  IsolationForest baseline).
- ``vae``: ``SequentialVAE`` trained batch by batch with checkpoints; its job (latent codes,
  ``vae_kde``/``vae_gmm`` scores, latent drift).
- ``density``: latent KDE and Bayesian GMM, drift between batches.
- ``scan_cnn``: host x slot connection images, the scan CNN, training images from the
  simulator.
- ``evaluate``: targets from known answers, ``anomaly.csv``, ROC curves, protocol-prediction
  usefulness, t-SNE maps; the summary over datasets.
- ``data``: reading user-flow shards whole or in bounded batches, keyed by (shard, row).

Files (every key is documented in the module that writes it):

| path | writer |
|---|---|
| ``results/{dataset}/embed/autoencoder/{curves.json,scores.parquet,model.pt,encoder.json}`` | ``autoencoder.run_autoencoder`` |
| ``results/{dataset}/embed/vae/{drift.json,scores.parquet,model.pt}`` | ``vae.run_vae`` |
| ``results/embed/scan_cnn/{model.pt,train.json}`` | ``scan_cnn.run_train`` |
| ``results/{dataset}/embed/scan_cnn/scores.parquet`` | ``scan_cnn.score_dataset`` |
| ``results/{dataset}/embed/{anomaly.csv,roc.json,usefulness.json,tsne.parquet}`` | ``evaluate.run_evaluate`` |
| ``results/metrics/anomaly.csv`` | ``evaluate.aggregate`` |
"""
