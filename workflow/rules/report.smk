rule report:
    input:
        unpack(report_inputs),
    output:
        report="results/report.html",
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        report=config["report"],
        datasets=DATASETS,
        models=MODELS,
        surrogate_nll=[m for m in MODELS if config["models"][m]["kind"] in ("ctgan", "tvae")],
        internal={name: spec.get("internal", []) for name, spec in config["datasets"].items()},
    script:
        "../scripts/report.py"
