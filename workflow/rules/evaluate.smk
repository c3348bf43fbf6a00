rule evaluate:
    input:
        unpack(user_tables),
        space="results/{dataset}/evalspace.json",
        model="results/{dataset}/models/{model}/seed{seed}",
        sample="results/{dataset}/samples/{model}/seed{seed}.parquet",
        ceiling="results/{dataset}/metrics/ceiling.json",
    output:
        metrics="results/{dataset}/metrics/{model}/seed{seed}.json",
    log:
        "logs/evaluate/{dataset}.{model}.seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}.{model}.seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        evaluation=config["evaluation"],
        internal=dataset_internal,
    script:
        "../scripts/evaluate.py"


rule ceiling:
    input:
        unpack(user_tables),
        space="results/{dataset}/evalspace.json",
    output:
        metrics="results/{dataset}/metrics/ceiling.json",
    log:
        "logs/ceiling/{dataset}.log",
    benchmark:
        "benchmarks/ceiling/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        evaluation=ceiling_settings(),
    script:
        "../scripts/ceiling.py"


rule reference:
    input:
        unpack(user_tables),
        space="results/{dataset}/evalspace.json",
        ceiling="results/{dataset}/metrics/ceiling.json",
    output:
        metrics="results/{dataset}/metrics/reference.json",
    log:
        "logs/reference/{dataset}.log",
    benchmark:
        "benchmarks/reference/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        evaluation=config["evaluation"],
        internal=dataset_internal,
    script:
        "../scripts/reference.py"


rule summarize:
    input:
        metrics=all_metric_files,
        references=expand("results/{dataset}/metrics/reference.json", dataset=DATASETS),
    output:
        summary="results/metrics/summary.csv",
    log:
        "logs/summarize/summary.log",
    benchmark:
        "benchmarks/summarize/summary.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seeds=SEEDS,
    script:
        "../scripts/summarize.py"
