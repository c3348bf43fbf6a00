# nfsynth: raw flow logs -> canonical Parquet -> user tables and windows -> models -> samples
# -> metrics, embeddings and anomaly detection -> results/report.html
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/users.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report.html",


rule ingest_only:
    input:
        expand("results/{dataset}/flows/manifest.json", dataset=DATASETS),


rule users_only:
    input:
        expand("results/{dataset}/temporal.json", dataset=DATASETS),
