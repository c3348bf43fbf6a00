"""Aggregate per-seed metric files into ``results/metrics/summary.csv``.

Columns: ``dataset, model, metric, goal, mean, std, n_seeds``. ``std`` is the sample
standard deviation over seeds (ddof 1; empty where only one value exists, as for the real
reference, model ``real``). Null (non-finite) values are left out of mean and std, and
``n_seeds`` counts the values used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

COLUMNS = ["dataset", "model", "metric", "goal", "mean", "std", "n_seeds"]
REFERENCE_MODEL = "real"
_SEED = re.compile(r"seed(\d+)\.json$")


def read_metrics_file(path: str | Path) -> dict:
    """The JSON document of a metrics file (``evaluate.write_metrics``: ``metrics``, ``goals``
    and the file's dataset, model and seed); a file that is not JSON, or has no ``metrics``
    object, is refused, naming the file (and the line)."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from err
    if "metrics" not in doc:
        raise ValueError(f"{path}: no `metrics` object")
    return doc


def _rows(path: str | Path, reference: bool) -> list[dict]:
    """Long rows of one metrics file; dataset/model/seed from the file, else its path
    (``results/{dataset}/metrics/{model}/seed{seed}.json``,
    ``results/{dataset}/metrics/reference.json``)."""
    p = Path(path)
    doc = read_metrics_file(p)
    if reference:
        dataset = doc.get("dataset", p.parent.parent.name)
        model, seed = REFERENCE_MODEL, 0
    else:
        dataset = doc.get("dataset", p.parent.parent.parent.name)
        model = doc.get("model", p.parent.name)
        match = _SEED.search(p.name)
        seed = doc.get("seed", int(match.group(1)) if match else 0)
    goals = doc.get("goals", {})
    return [
        {"dataset": dataset, "model": model, "seed": seed, "metric": name,
         "goal": goals.get(name, ""), "value": value}
        for name, value in doc["metrics"].items()
    ]  # fmt: skip


def summarize(
    metric_files: Iterable[str | Path], reference_files: Iterable[str | Path] = ()
) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per (dataset, model, metric).

    Reference files appear as model ``real``. Rows sorted by dataset, model, metric.
    """
    rows = [r for f in metric_files for r in _rows(f, False)]
    rows += [r for f in reference_files for r in _rows(f, True)]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    long = pd.DataFrame(rows)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    keys = ["dataset", "model", "metric"]
    goals = long.groupby(keys, sort=True)["goal"].agg(lambda g: next((x for x in g if x), ""))
    stats = long.groupby(keys, sort=True)["value"].agg(["mean", "std", "count"])
    out = stats.join(goals).reset_index().rename(columns={"count": "n_seeds"})
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out[COLUMNS]


def write_summary(
    metric_files: Iterable[str | Path], reference_files: Iterable[str | Path], path: str | Path
) -> pd.DataFrame:
    """:func:`summarize` written as CSV to ``path``; returns the frame."""
    table = summarize(metric_files, reference_files)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table
