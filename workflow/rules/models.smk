rule evalspace:
    input:
        unpack(user_tables),
    output:
        space="results/{dataset}/evalspace.json",
    log:
        "logs/evalspace/{dataset}.log",
    benchmark:
        "benchmarks/evalspace/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        top_k=config["evaluation"]["top_k"],
        n_bins=config["evaluation"]["n_bins"],
    script:
        "../scripts/evalspace.py"


rule train:
    input:
        unpack(user_tables),
        space="results/{dataset}/evalspace.json",
    output:
        model=directory("results/{dataset}/models/{model}/seed{seed}"),
    log:
        "logs/train/{dataset}.{model}.seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}.{model}.seed{seed}.tsv"
    threads: model_threads
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=model_needs_gpu,
    params:
        hp=model_params,
    script:
        "../scripts/train.py"


rule sample:
    input:
        model="results/{dataset}/models/{model}/seed{seed}",
        split="results/{dataset}/users/split.json",
        hosts="results/{dataset}/users/hosts.parquet",
    output:
        sample="results/{dataset}/samples/{model}/seed{seed}.parquet",
    log:
        "logs/sample/{dataset}.{model}.seed{seed}.log",
    benchmark:
        "benchmarks/sample/{dataset}.{model}.seed{seed}.tsv"
    threads: model_threads
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=model_needs_gpu,
    params:
        sampling=config["sampling"],
    script:
        "../scripts/sample.py"
