"""The model table marks the best value by each metric's goal, never the reference row."""

from __future__ import annotations

import pandas as pd
import pytest

from nfsynth.report.html import table
from nfsynth.report.models import best_models, metric_table_html, models_section


@pytest.fixture
def summary() -> pd.DataFrame:
    rows = [
        # dataset, model, metric, goal, mean, std, n_seeds
        ("d", "b1", "jsd_mean", "min", 0.30, 0.01, 3),
        ("d", "b2", "jsd_mean", "min", 0.20, 0.02, 3),
        ("d", "neural", "jsd_mean", "min", 0.10, 0.01, 3),
        ("d", "real", "jsd_mean", "min", 0.01, 0.0, 1),
        ("d", "b1", "coverage", "max", 0.50, 0.05, 3),
        ("d", "b2", "coverage", "max", 0.90, 0.01, 3),
        ("d", "neural", "coverage", "max", 0.80, 0.02, 3),
        ("d", "real", "coverage", "max", 0.99, 0.0, 1),
        ("d", "b1", "tstr_protocol_f1", "max", 0.6, 0.1, 3),
        ("d", "b2", "tstr_protocol_f1", "max", 0.6, 0.1, 3),
        ("d", "neural", "tstr_protocol_f1", "max", 0.4, 0.1, 3),
        ("d", "real", "tstr_protocol_f1", "max", 0.9, 0.0, 1),
    ]
    return pd.DataFrame(
        rows, columns=["dataset", "model", "metric", "goal", "mean", "std", "n_seeds"]
    )


def test_best_follows_goal_and_excludes_reference(summary):
    best = best_models(summary).set_index("metric")
    assert best.at["jsd_mean", "best"] == "neural"  # lower is better; real (0.01) does not compete
    assert best.at["coverage", "best"] == "b2"  # higher is better; real (0.99) does not compete
    assert best.at["tstr_protocol_f1", "best"] == "b1, b2"  # a tie names both


def test_table_marks_best_cells(summary):
    html = metric_table_html(summary, "d", ["jsd_mean", "coverage"], "caption")
    rows = html.split("<tr>")[2:]  # after the header row
    by_model = {r.split("</td>")[0].split(">")[-1]: r for r in rows}
    assert by_model["neural"].count(' best"') == 1  # jsd_mean
    assert by_model["b2"].count(' best"') == 1  # coverage
    assert ' best"' not in by_model["b1"]
    assert ' best"' not in by_model["real"] and ' ref"' in by_model["real"]
    assert "0.1 ± 0.01" in by_model["neural"]


def test_section_has_winner_list_and_utility_table(summary):
    html = "".join(models_section(summary, "d").parts)
    assert "Winner per metric" in html and "Utility" in html and "Fidelity" in html
    with pytest.raises(ValueError):
        models_section(summary, "other")


def test_training_time_table_shows_job_and_fit_times_beside_fidelity(summary):
    seconds = pd.DataFrame(
        {
            "dataset": ["d", "d", "other", "d"],
            "model": ["b1", "neural", "b1", "retired"],
            "train_seconds": [3.5, 27.25, 99.0, 96.0],
            "fit_seconds": [1.25, 12.75, 98.0, 95.0],
            "fit_cpu_seconds": [1.125, 11.5, 97.0, 94.0],
        }
    )
    html = "".join(models_section(summary, "d", seconds).parts)
    part = html.split("Training time beside fidelity")[1]
    assert "fit_cpu_seconds" in part and "jsd_mean" in part
    neural = next(r for r in part.split("<tr>") if ">neural<" in r)
    assert "27.25" in neural and "12.75" in neural and "11.5" in neural and "0.1" in neural
    assert "99" not in part and "98" not in part  # another dataset's jobs stay out
    assert "retired" not in part  # a model directory of no configured model


def test_empty_table_is_an_error():
    with pytest.raises(ValueError):
        table(pd.DataFrame({"a": []}), caption="empty")


def test_surrogate_nll_is_marked_and_does_not_compete(summary):
    extra = pd.DataFrame(
        [
            ("d", "ctgan", "nll_bits", "min", 1.0, 0.1, 3),
            ("d", "neural", "nll_bits", "min", 9.0, 0.1, 3),
        ],
        columns=summary.columns,
    )
    both = pd.concat([summary, extra], ignore_index=True)
    best = best_models(both, frozenset({"ctgan"})).set_index("metric")
    assert best.at["nll_bits", "best"] == "neural"  # ctgan's 1.0 is a surrogate
    html = metric_table_html(both, "d", ["nll_bits"], "c", frozenset({"ctgan"}))
    assert "1 (surrogate)" in html


def with_metric(summary: pd.DataFrame, metric: str, goal: str, **means: float) -> pd.DataFrame:
    """``summary`` with one row of dataset ``d`` per model of ``means`` (sd 0, 3 seeds)."""
    rows = [("d", model, metric, goal, mean, 0.0, 3) for model, mean in means.items()]
    return pd.concat([summary, pd.DataFrame(rows, columns=summary.columns)], ignore_index=True)


def test_reference_and_detail_metrics_do_not_compete(summary):
    both = with_metric(summary, "trtr_protocol_f1", "max", b1=0.9, b2=0.9)
    both = with_metric(both, "jsd_bytes", "min", b1=0.1, b2=0.2)
    assert "trtr_protocol_f1" not in set(best_models(both)["metric"])
    html = "".join(models_section(both, "d").parts)
    winners = html.split("Winner per metric")[1]
    assert "jsd_bytes" not in winners and "trtr_protocol_f1" not in winners
    assert "Per-field and per-rule details" in html


def test_per_protocol_f1_gets_its_own_table_and_no_winner(summary):
    """The F1 of each protocol behind the TSTR macro-F1 is shown in a table of its own under
    Utility, and, a breakdown, does not enter the winner list."""
    per_protocol = with_metric(summary, "tstr_protocol_f1_udp", "max", b1=0.2, b2=0.7)
    per_protocol = with_metric(per_protocol, "trtr_protocol_f1_udp", "max", b1=0.8, b2=0.8)
    html = "".join(models_section(per_protocol, "d").parts)
    utility = html.split("Utility")[1].split("Winner per metric")[0]
    tables = utility.split("<table")[1:]
    assert len(tables) == 2
    assert "tstr_protocol_f1 " in tables[0] and "tstr_protocol_f1_udp" not in tables[0]
    assert "tstr_protocol_f1_udp" in tables[1] and "trtr_protocol_f1_udp" in tables[1]
    assert "tstr_protocol_f1_udp" not in html.split("Winner per metric")[1]


def test_the_split_acf_figure_stands_beside_the_acf_error_and_does_not_compete(summary):
    """``trtr_acf_mae`` (the training hosts in a sample's place) is a fidelity figure: it is
    a column of the fidelity table, right after ``acf_mae``, in no utility table and not a
    winner, though its value is the lowest of the column it would compete in."""
    split = with_metric(summary, "acf_mae", "min", b1=0.035, b2=0.042, neural=0.044)
    split = with_metric(split, "trtr_acf_mae", "min", b1=0.056, b2=0.056, neural=0.056)
    html = "".join(models_section(split, "d").parts)
    fidelity = html.split("Fidelity and likelihood")[1].split("Utility")[0]
    utility = html.split("Utility")[1].split("Winner per metric")[0]
    header = fidelity.split("</thead>")[0]
    assert header.index("acf_mae ↓") < header.index("trtr_acf_mae ↓")
    assert header.index("trtr_acf_mae ↓") - header.index("acf_mae ↓") < 40  # the next column
    assert "trtr_acf_mae" not in utility
    winners = html.split("Winner per metric")[1]
    assert "trtr_acf_mae" not in winners and "acf_mae" in winners
