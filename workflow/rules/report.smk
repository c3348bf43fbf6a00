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
            inputs[f"sample_{dataset}_{model}"] = f"results/{dataset}/samples/{model}/seed{SEEDS[0]}.parquet"
    return inputs


rule report:
    input:
        unpack(report_inputs),
    output:
        report="results/report.html",
    params:
        report=config["report"],
        datasets=DATASETS,
        models=MODELS,
        internal={name: spec.get("internal", []) for name, spec in config["datasets"].items()},
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/report.py"
