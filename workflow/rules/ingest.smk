rule simulate:
    output:
        labels="results/{dataset}/raw/labels.csv",
        truth="results/{dataset}/raw/truth.json",
    log:
        "logs/simulate/{dataset}.log",
    benchmark:
        "benchmarks/simulate/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        sim=simulate_params,
    script:
        "../scripts/simulate.py"


rule ingest:
    input:
        raw=raw_inputs,
    output:
        manifest="results/{dataset}/flows/manifest.json",
        rejects="results/{dataset}/flows/rejects.csv",
    log:
        "logs/ingest/{dataset}.log",
    benchmark:
        "benchmarks/ingest/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        ingest=ingest_params,
    script:
        "../scripts/ingest.py"
