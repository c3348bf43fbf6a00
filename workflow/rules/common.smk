"""Helpers shared by the rules: config validation, dataset inputs, config slices."""

import glob
import os
import sys

import yaml
from snakemake.utils import update_config, validate


def _replace_from_user_configfiles(cfg, keys=("datasets", "models")):
    """A --configfile that names its own `datasets` (or `models`) replaces the default ones
    instead of being merged into them (design §1); every other key merges as usual. Among
    several --configfiles, a later one that names an entry an earlier one has merges into it
    key by key (`--configfile config/test.yaml tweak.yaml`, tweak.yaml setting one model
    option, keeps the rest of that model's settings)."""
    for key in keys:
        replaced = {}
        for path in workflow.overwrite_configfiles or []:
            with open(path) as handle:
                loaded = yaml.safe_load(handle) or {}
            for name, entry in (loaded.get(key) or {}).items():
                if isinstance(replaced.get(name), dict) and isinstance(entry, dict):
                    update_config(replaced[name], entry)
                else:
                    replaced[name] = entry
        if replaced:
            cfg[key] = replaced


_replace_from_user_configfiles(config)
validate(config, "../../config/schema.yaml")


def _drop_unavailable_peers(cfg):
    """CTGAN/TVAE need the optional `peers` extra: without it their models are skipped, with a
    note, and the rest of the workflow runs."""
    from nfsynth.models.peers import available

    ok, why = available()
    peers = [m for m, spec in cfg["models"].items() if spec["kind"] in ("ctgan", "tvae")]
    if peers and not ok:
        for name in peers:
            cfg["models"].pop(name)
        print(f"note: models {', '.join(peers)} skipped: {why}", file=sys.stderr)
    if not cfg["models"]:
        raise ValueError("no model left to train: configure at least one in `models`")


_drop_unavailable_peers(config)

DATASETS = sorted(config["datasets"])
SEEDS = [int(seed) for seed in config["seeds"]]
SHARDS = list(range(int(config["users"]["shards"])))
MODELS = sorted(config["models"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="[A-Za-z0-9_-]+",
    seed=r"\d+",
    shard=r"\d+",


def dataset_spec(wildcards):
    """The `datasets.<name>` slice of the config."""
    return config["datasets"][wildcards.dataset]


def raw_inputs(wildcards):
    """Input files of a dataset: the simulator's day files, or the configured file(s)."""
    spec = config["datasets"][wildcards.dataset]
    if spec["format"] == "simulate":
        return [f"results/{wildcards.dataset}/raw/labels.csv"]
    path = spec.get("path")
    if not path:
        raise ValueError(
            f"datasets.{wildcards.dataset}: `path` is required for format {spec['format']}"
        )
    if os.path.isdir(path):
        files = sorted(
            f
            for f in glob.glob(os.path.join(path, "*"))
            if os.path.isfile(f) and not os.path.basename(f).startswith(".")
        )
        if not files:
            raise ValueError(f"datasets.{wildcards.dataset}: directory {path} holds no files")
        return files
    if not os.path.exists(path):
        raise ValueError(f"datasets.{wildcards.dataset}: path {path} does not exist")
    return [path]


def simulate_params(wildcards):
    """The simulator slice of a `simulate` dataset."""
    return config["datasets"][wildcards.dataset].get("simulate", {})


def ingest_params(wildcards):
    """Format, paths and ingest settings: what an ingest job depends on."""
    spec = config["datasets"][wildcards.dataset]
    return {"format": spec["format"], **config["ingest"]}


def select_params(wildcards):
    """What the user selection depends on: the dataset's internal filter and `users`."""
    users = config["users"]
    return {
        "internal": config["datasets"][wildcards.dataset].get("internal", []),
        "top_n": users["top_n"],
        "min_flows": users["min_flows"],
        "include": users["include"],
        "shards": users["shards"],
        "split": users["split"],
    }


def user_flow_shards(wildcards):
    return expand(
        "results/{dataset}/users/flows/shard-{shard}.parquet",
        dataset=wildcards.dataset,
        shard=SHARDS,
    )


def window_shards(wildcards):
    return expand(
        "results/{dataset}/users/windows/shard-{shard}.parquet",
        dataset=wildcards.dataset,
        shard=SHARDS,
    )


def user_tables(wildcards):
    """Every file of a dataset's user tables (what `UserTables.load` reads)."""
    return {
        "hosts": f"results/{wildcards.dataset}/users/hosts.parquet",
        "split": f"results/{wildcards.dataset}/users/split.json",
        "flows": user_flow_shards(wildcards),
        "windows": window_shards(wildcards),
    }


def model_params(wildcards):
    """The `models.<name>` slice: the only config a model's train job depends on."""
    return config["models"][wildcards.model]


#: CPU threads of a model's train and sample jobs: the baselines are single-threaded;
#: CTGAN/TVAE's tiny operations spend ~10x more CPU per step on two threads; the neural
#: model uses its `cpu_threads` (0: all, counted as 2 here).
MODEL_THREADS = {"independent": 1, "bayesnet": 1, "ctgan": 1, "tvae": 1}


def model_threads(wildcards):
    """Threads of a model's train and sample jobs, by its kind (the neural model: its
    configured torch threads, so a one-thread job does not hold a second core idle)."""
    spec = config["models"][wildcards.model]
    if spec["kind"] == "neural":
        return int(spec.get("cpu_threads", 1)) or 2
    return MODEL_THREADS[spec["kind"]]


def model_needs_gpu(wildcards):
    """1 when the model is configured for CUDA, so a cluster profile can place the job."""
    return 1 if config["models"][wildcards.model].get("device") == "cuda" else 0


def all_metric_files(wildcards=None):
    return expand(
        "results/{dataset}/metrics/{model}/seed{seed}.json",
        dataset=DATASETS,
        model=MODELS,
        seed=SEEDS,
    )


#: the evaluation settings the train-on-real ceiling depends on (rule ceiling's params)
CEILING_KEYS = ("max_rows", "subsample_seed", "utility_draws", "forecast_lags")


def ceiling_settings():
    """The slice of `evaluation` that rule ceiling reads: editing another evaluation setting
    rescores the samples but leaves the ceiling."""
    return {key: config["evaluation"][key] for key in CEILING_KEYS}


def dataset_internal(wildcards):
    """The dataset's internal-address filter (CIDR blocks and name patterns)."""
    return config["datasets"][wildcards.dataset].get("internal", [])


def report_inputs(wildcards):
    """Every file the report reads: per dataset its flows, users, temporal analysis, evaluation
    space and first-seed samples; the metric summary; the embedding and anomaly outputs."""
    inputs = {
        "summary": "results/metrics/summary.csv",
        "anomaly": "results/metrics/anomaly.csv",
        "embed": embed_outputs(),
    }
    for dataset in DATASETS:
        inputs[f"manifest_{dataset}"] = f"results/{dataset}/flows/manifest.json"
        inputs[f"temporal_{dataset}"] = f"results/{dataset}/temporal.json"
        inputs[f"space_{dataset}"] = f"results/{dataset}/evalspace.json"
        inputs[f"hosts_{dataset}"] = f"results/{dataset}/users/hosts.parquet"
        for model in MODELS:
            inputs[f"sample_{dataset}_{model}"] = (
                f"results/{dataset}/samples/{model}/seed{SEEDS[0]}.parquet"
            )
    return inputs


def embed_needs_gpu(wildcards=None):
    """1 when the embed stage is configured for CUDA, so a cluster profile can place the job."""
    return 1 if config["embed"].get("device") == "cuda" else 0


def embed_device(wildcards=None):
    return config["embed"].get("device", "auto")


def embed_truth(wildcards):
    """The simulator's labels.csv and truth.json for a `simulate` dataset; nothing otherwise."""
    if config["datasets"][wildcards.dataset]["format"] != "simulate":
        return {}
    return {
        "labels": f"results/{wildcards.dataset}/raw/labels.csv",
        "truth": f"results/{wildcards.dataset}/raw/truth.json",
    }


def embed_outputs(wildcards=None):
    """Every file the embed stage writes, for all datasets (the report depends on them)."""
    per_dataset = [
        "results/{dataset}/embed/autoencoder/curves.json",
        "results/{dataset}/embed/autoencoder/scores.parquet",
        "results/{dataset}/embed/vae/drift.json",
        "results/{dataset}/embed/vae/scores.parquet",
        "results/{dataset}/embed/scan_cnn/scores.parquet",
        "results/{dataset}/embed/anomaly.csv",
        "results/{dataset}/embed/roc.json",
        "results/{dataset}/embed/usefulness.json",
        "results/{dataset}/embed/tsne.parquet",
    ]
    return [
        *expand(per_dataset, dataset=DATASETS),
        "results/embed/scan_cnn/train.json",
        "results/metrics/anomaly.csv",
    ]
