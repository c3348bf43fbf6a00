# Flow embeddings and anomaly detection (docs/architecture.md, "Embeddings"): autoencoders,
# the sequential VAE with latent densities, the port-scan CNN, and their evaluation.


rule embed_autoencoder:
    input:
        unpack(user_tables),
    output:
        curves="results/{dataset}/embed/autoencoder/curves.json",
        model="results/{dataset}/embed/autoencoder/model.pt",
        encoder="results/{dataset}/embed/autoencoder/encoder.json",
        scores="results/{dataset}/embed/autoencoder/scores.parquet",
    log:
        "logs/embed_autoencoder/{dataset}.log",
    benchmark:
        "benchmarks/embed_autoencoder/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=embed_needs_gpu,
    params:
        autoencoder=config["embed"]["autoencoder"],
        context=config["windows"]["context"],
        seed=config["embed"]["seed"],
        device=embed_device,
    script:
        "../scripts/embed_autoencoder.py"


rule embed_vae:
    input:
        unpack(user_tables),
    output:
        scores="results/{dataset}/embed/vae/scores.parquet",
        drift="results/{dataset}/embed/vae/drift.json",
        model="results/{dataset}/embed/vae/model.pt",
    log:
        "logs/embed_vae/{dataset}.log",
    benchmark:
        "benchmarks/embed_vae/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=embed_needs_gpu,
    params:
        vae=config["embed"]["vae"],
        context=config["windows"]["context"],
        seed=config["embed"]["seed"],
        device=embed_device,
    script:
        "../scripts/embed_vae.py"


rule scan_cnn_train:
    output:
        model="results/embed/scan_cnn/model.pt",
        report="results/embed/scan_cnn/train.json",
    log:
        "logs/scan_cnn_train/scan_cnn_train.log",
    benchmark:
        "benchmarks/scan_cnn_train/scan_cnn_train.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=embed_needs_gpu,
    params:
        scan_cnn=config["embed"]["scan_cnn"],
        seed=config["embed"]["seed"],
        device=embed_device,
    script:
        "../scripts/embed_scan_cnn_train.py"


rule embed_scan_cnn:
    input:
        unpack(user_tables),
        unpack(embed_truth),
        model="results/embed/scan_cnn/model.pt",
        report="results/embed/scan_cnn/train.json",
    output:
        scores="results/{dataset}/embed/scan_cnn/scores.parquet",
    log:
        "logs/embed_scan_cnn/{dataset}.log",
    benchmark:
        "benchmarks/embed_scan_cnn/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        device=embed_device,
    script:
        "../scripts/embed_scan_cnn.py"


rule embed_evaluate:
    input:
        unpack(user_tables),
        unpack(embed_truth),
        ae_scores="results/{dataset}/embed/autoencoder/scores.parquet",
        ae_encoder="results/{dataset}/embed/autoencoder/encoder.json",
        vae_scores="results/{dataset}/embed/vae/scores.parquet",
        cnn_scores="results/{dataset}/embed/scan_cnn/scores.parquet",
    output:
        anomaly="results/{dataset}/embed/anomaly.csv",
        roc="results/{dataset}/embed/roc.json",
        usefulness="results/{dataset}/embed/usefulness.json",
        tsne="results/{dataset}/embed/tsne.parquet",
    log:
        "logs/embed_evaluate/{dataset}.log",
    benchmark:
        "benchmarks/embed_evaluate/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        tsne_points=config["embed"]["tsne_points"],
        seed=config["embed"]["seed"],
    script:
        "../scripts/embed_evaluate.py"


rule anomaly_summary:
    input:
        tables=expand("results/{dataset}/embed/anomaly.csv", dataset=DATASETS),
    output:
        anomaly="results/metrics/anomaly.csv",
    log:
        "logs/anomaly_summary/anomaly_summary.log",
    benchmark:
        "benchmarks/anomaly_summary/anomaly_summary.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/embed_summary.py"
