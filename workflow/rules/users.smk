rule select_users:
    input:
        manifest="results/{dataset}/flows/manifest.json",
    output:
        hosts="results/{dataset}/users/hosts.parquet",
        split="results/{dataset}/users/split.json",
    log:
        "logs/select_users/{dataset}.log",
    benchmark:
        "benchmarks/select_users/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        select=select_params,
    script:
        "../scripts/select_users.py"


rule user_flows:
    input:
        manifest="results/{dataset}/flows/manifest.json",
        hosts="results/{dataset}/users/hosts.parquet",
        split="results/{dataset}/users/split.json",
    output:
        flows="results/{dataset}/users/flows/shard-{shard}.parquet",
    log:
        "logs/user_flows/{dataset}.shard{shard}.log",
    benchmark:
        "benchmarks/user_flows/{dataset}.shard{shard}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        rolling_seconds=config["users"]["rolling_seconds"],
        max_rows=config["users"]["max_rows_in_memory"],
    script:
        "../scripts/user_flows.py"


rule windows:
    input:
        flows="results/{dataset}/users/flows/shard-{shard}.parquet",
        manifest="results/{dataset}/flows/manifest.json",
        hosts="results/{dataset}/users/hosts.parquet",
    output:
        windows="results/{dataset}/users/windows/shard-{shard}.parquet",
        meta="results/{dataset}/users/windows/meta-{shard}.json",
    log:
        "logs/windows/{dataset}.shard{shard}.log",
    benchmark:
        "benchmarks/windows/{dataset}.shard{shard}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        windows=config["windows"],
    script:
        "../scripts/windows.py"


rule temporal:
    input:
        unpack(user_tables),
    output:
        temporal="results/{dataset}/temporal.json",
    log:
        "logs/temporal/{dataset}.log",
    benchmark:
        "benchmarks/temporal/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        temporal=config["temporal"],
    script:
        "../scripts/temporal.py"
