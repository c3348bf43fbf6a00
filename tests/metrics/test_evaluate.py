"""evaluate_sample / evaluate_reference end to end on hand-made user tables, and the helpers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.features.tables import UserTables
from nfsynth.features.userflows import derive_features
from nfsynth.metrics import acf
from nfsynth.metrics.common import BREAKDOWN_PREFIXES, subsample_hosts
from nfsynth.metrics.evaluate import (
    SPLIT_ACF,
    evaluate_reference,
    evaluate_sample,
    goal_of,
    score,
    write_metrics,
)
from nfsynth.metrics.summary import summarize
from nfsynth.report.models import is_detail_metric
from tests.metrics.flowdata import column_resample, make_raw

INTERNAL = ["Comp*", "DNS*", "Mail"]
CFG = {"max_rows": 4000, "privacy_rows": 1000, "prdc_rows": 1000}


@pytest.fixture(scope="module")
def users() -> UserTables:
    raws = {
        name: make_raw(seed, n_users=8) for name, seed in (("train", 11), ("val", 12), ("test", 13))
    }
    split = {"mode": "hosts", **{k: sorted(v["user"].unique()) for k, v in raws.items()}}
    flows = derive_features(
        pd.concat(raws.values(), ignore_index=True),
        internal=INTERNAL,
        rolling_seconds=None,
        split=split,
    )
    return UserTables.from_frames(flows, split=split)


@pytest.fixture(scope="module")
def results(users, tmp_path_factory):
    space = EvalSpace.fit(users.subset("train"))
    sample = column_resample(make_raw(14, n_users=8, prefix="synth-"), seed=3)
    sample = sample.drop(columns=["src", "dst"]).assign(src="x", dst="y")
    reference = evaluate_reference(users, space, CFG, INTERNAL)
    resample = evaluate_sample(users, space, sample, None, CFG, INTERNAL)
    return reference, resample


def test_reference_sits_closer_than_a_column_resample(results):
    reference, resample = results
    for name in ("mi_pairwise_diff", "hour_mi_diff", "jsd_hour_mean", "acf_mae", "rule_violations",
                 "coverage", "tstr_protocol_f1"):  # fmt: skip
        better = min if goal_of(name) == "min" else max
        assert better(reference[name], resample[name]) == reference[name] != resample[name], name
    assert resample["mi_pairwise_diff"] > 5 * reference["mi_pairwise_diff"]
    assert reference["trtr_protocol_f1"] == resample["trtr_protocol_f1"]
    assert "nll_bits" not in reference and "nll_bits" not in resample
    assert reference["dcr_median_ratio"] == pytest.approx(1.0, abs=0.3)


def test_files_round_trip_through_the_summary(results, tmp_path):
    reference, resample = results
    ref_file = tmp_path / "sim/metrics/reference.json"
    seed_file = tmp_path / "sim/metrics/b1/seed1.json"
    write_metrics(ref_file, reference, dataset="sim", model="real")
    write_metrics(
        seed_file, {**resample, "nll_bits": float("inf")}, dataset="sim", model="b1", seed=1
    )
    doc = json.loads(seed_file.read_text())
    assert doc["metrics"]["nll_bits"] is None and doc["goals"]["density"] == "max"
    table = summarize([seed_file], [ref_file])
    assert set(table["model"]) == {"b1", "real"}
    assert set(table["goal"]) == {"min", "max"}
    assert len(table) == len(reference) + len(resample) + 1


def test_the_dataset_ceiling_is_what_every_sample_would_compute(users, results, tmp_path):
    """Setup: the dataset's ceiling computed once (``dataset_ceiling``) and written as rule
    ``ceiling`` writes it. Assert: it holds the train-on-real figures only; a sample and the
    reference scored with it read exactly what they compute without it; a metrics file of
    another kind is refused as a ceiling, naming the file and the metric."""
    from nfsynth.metrics.evaluate import dataset_ceiling, read_ceiling

    reference, resample = results
    space = EvalSpace.fit(users.subset("train"))
    ceiling = dataset_ceiling(users, space, CFG)
    write_metrics(tmp_path / "ceiling.json", ceiling, dataset="sim")
    utility = {k: v for k, v in resample.items() if k.startswith("trtr_") and k != SPLIT_ACF}
    assert ceiling == utility  # the ACF's trtr_ figure comes with the other per-host ones
    sample = column_resample(make_raw(14, n_users=8, prefix="synth-"), seed=3)
    sample = sample.drop(columns=["src", "dst"]).assign(src="x", dst="y")
    read = read_ceiling(tmp_path / "ceiling.json")
    # NaN figures (burst_diff where the flows have no bursts) compare equal
    np.testing.assert_equal(
        evaluate_sample(users, space, sample, None, CFG, INTERNAL, read), resample
    )
    np.testing.assert_equal(evaluate_reference(users, space, CFG, INTERNAL, read), reference)
    write_metrics(tmp_path / "other.json", resample)
    with pytest.raises(ValueError, match=r"other\.json: not a ceiling file: metric 'acf_mae'"):
        read_ceiling(tmp_path / "other.json")


def test_subsample_keeps_whole_hosts_then_a_contiguous_prefix():
    flows = pd.DataFrame(
        {
            "user": np.repeat(["a", "b", "c", "d"], [30, 30, 30, 30]),
            "ts": np.tile(np.arange(30.0), 4),
        }
    )
    sub = subsample_hosts(flows, 75, seed=0)
    assert len(sub) == 75
    sizes = sub["user"].value_counts()
    assert sorted(sizes.tolist()) == [15, 30, 30]
    partial = sub[sub["user"] == sizes.idxmin()]
    assert partial["ts"].tolist() == list(np.arange(15.0))  # the earliest flows, in order
    assert subsample_hosts(flows, 75, seed=0).equals(sub)  # deterministic
    assert subsample_hosts(flows, 500).equals(flows)


def test_every_written_metric_has_a_goal(results):
    for name in {**results[0], **results[1]}:
        assert goal_of(name) in ("min", "max")
    with pytest.raises(KeyError):
        goal_of("no_such_metric")


def test_breakdowns_are_report_details_with_a_min_goal(results):
    """One list of breakdown prefixes serves the goals and the report's details table."""
    names = {**results[0], **results[1]}
    details = [n for n in names if is_detail_metric(n)]
    seen = {p for p in BREAKDOWN_PREFIXES if any(n.startswith(p) for n in details)}
    assert {"jsd_", "w1_", "acf_mae_", "rule_"} <= seen
    assert all(goal_of(n) == "min" for n in details)
    assert not is_detail_metric("jsd_mean") and "jsd_mean" in names  # a headline metric
    assert goal_of("tstr_protocol_f1_udp") == "max"
    assert not is_detail_metric("tstr_protocol_f1_udp")


@pytest.mark.parametrize("n_users", [8, 48])
def test_flow_metrics_on_random_rows_sequence_metrics_on_whole_hosts(users, n_users):
    """evaluate_sample cuts a flooding sample (48 hosts against 8 training hosts) to
    FLOOD_FACTOR x the training flows in whole hosts before deriving features, and keeps
    every host of a sample the training split's size (8 hosts), however small max_rows is;
    then it scores the flow metrics on random rows, the forecast and NLL on whole hosts,
    each drawn with the subsample seed, and the per-host statistics (ACF, inter-arrival,
    runs) on every host; the protocol utility redraws its training flows from the derived
    sample and the training split."""
    from nfsynth.metrics.common import sample_rows
    from nfsynth.metrics.evaluate import FLOOD_FACTOR, score, synthetic_flows

    space = EvalSpace.fit(users.subset("train"))
    sample = column_resample(make_raw(21, n_users=n_users, prefix="synth-"), seed=5)
    sample = sample.drop(columns=["src", "dst"]).assign(src="x", dst="y")
    n_train = len(users.subset("train"))
    max_rows = n_train // 10
    cfg = {**CFG, "max_rows": max_rows}
    got = evaluate_sample(users, space, sample, None, cfg, INTERNAL)
    raw = subsample_hosts(sample, FLOOD_FACTOR * n_train, 0)
    if n_users == 8:  # as many flows as the training split: every host kept
        assert FLOOD_FACTOR * max_rows < len(raw) == len(sample) < FLOOD_FACTOR * n_train
    else:
        assert len(raw) == FLOOD_FACTOR * n_train < len(sample)
    derived = synthetic_flows(raw, INTERNAL)
    real, train = users.subset("test"), users.subset("train")
    want = score(
        sample_rows(real, max_rows, 0),
        sample_rows(derived, max_rows, 0),
        sample_rows(train, max_rows, 0),
        space,
        cfg,
        raw_synthetic=sample_rows(raw, max_rows, 0),
        real_seq=subsample_hosts(real, max_rows, 0),
        synthetic_seq=subsample_hosts(derived, max_rows, 0),
        train_seq=subsample_hosts(train, max_rows, 0),
        real_hosts=real,  # ACF, inter-arrival, runs: every host up to evaluation.host_rows
        synthetic_hosts=derived,
        train_hosts=train,  # acf_mae_train
        synthetic_pool=derived,  # the protocol utility's redraws (evaluation.utility_draws)
        train_pool=train,
    )
    assert got == pytest.approx(want, nan_ok=True)


def test_flow_metrics_score_as_many_synthetic_flows_as_training_flows(users):
    """A sample with more flows than the training split is scored on as many random flows as
    the training split has (the size TRTR trains on), so no model gains from its volume
    alone: an empirical JSD falls with the rows behind it."""
    from nfsynth.metrics.common import sample_rows
    from nfsynth.metrics.evaluate import score, synthetic_flows

    space = EvalSpace.fit(users.subset("train"))
    train, real = users.subset("train"), users.subset("test")
    sample = column_resample(make_raw(31, n_users=40, prefix="synth-"), seed=7)
    sample = sample.drop(columns=["src", "dst"]).assign(src="x", dst="y")
    derived = synthetic_flows(sample, INTERNAL)
    assert len(derived) > 3 * len(train)
    cfg = {**CFG, "max_rows": 10 * len(sample)}
    got = evaluate_sample(users, space, sample, None, cfg, INTERNAL)

    def scored(n_flows: int) -> dict[str, float]:
        return score(
            sample_rows(real, cfg["max_rows"], 0),
            sample_rows(derived, n_flows, 0),
            sample_rows(train, cfg["max_rows"], 0),
            space,
            cfg,
            raw_synthetic=sample_rows(sample, cfg["max_rows"], 0),
            real_seq=subsample_hosts(real, cfg["max_rows"], 0),
            synthetic_seq=subsample_hosts(derived, cfg["max_rows"], 0),
            train_seq=subsample_hosts(train, cfg["max_rows"], 0),
            real_hosts=real,
            synthetic_hosts=derived,
            train_hosts=train,  # acf_mae_train
            synthetic_pool=derived,
            train_pool=train,
        )

    assert got == pytest.approx(scored(len(train)), nan_ok=True)
    every = scored(len(derived))  # all of the sample's flows: a lower JSD for the volume
    assert every["jsd_mean"] < got["jsd_mean"]


def test_the_acf_error_sees_every_host_where_max_rows_holds_a_few():
    """Hosts of two kinds: half whose activity persists for hours, half whose activity has
    no memory. A sample drawn from the same mix as the test split matches its ACF when every
    host is scored (``host_rows``, the default). Scored on the whole hosts that a sixth of
    the flows hold, as ``max_rows`` held them, it compares one draw of a few real hosts with
    another of synthetic ones, and the error swings with the draw."""
    from nfsynth.metrics import acf
    from tests.metrics.flowdata import user_flows

    def hosts(seed: int, prefix: str) -> pd.DataFrame:
        raw = pd.concat(
            [
                make_raw(seed, n_users=6, rate=4.0, prefix=f"{prefix}A", persistence=0.97),
                make_raw(seed + 50, n_users=6, rate=4.0, prefix=f"{prefix}B", persistence=0.0),
            ],
            ignore_index=True,
        )
        return user_flows(raw)

    real, synthetic = hosts(41, "Comp"), hosts(42, "CompSynth")
    every = acf.compute(real, synthetic)["acf_mae"]
    few_rows = 2 * len(real) // 12
    few = [
        acf.compute(subsample_hosts(real, few_rows, s), subsample_hosts(synthetic, few_rows, s))[
            "acf_mae"
        ]
        for s in range(8)
    ]
    assert every < 0.05
    assert np.mean(few) > 2 * every
    assert max(few) - min(few) > 2 * every


def test_the_acf_error_against_the_training_hosts_separates_the_model_from_the_split():
    """``acf_mae_train``: training hosts whose activity persists for hours, test hosts whose
    activity has no memory (as on a split by host whose test hosts are flatter). Against the
    training hosts, a sample of hosts like them scores under half what a sample with no
    memory scores; against the test hosts, over twice. ``acf_mae`` alone would rank the
    sample with no memory first."""
    from tests.metrics.flowdata import user_flows

    kinds = {"train": ("CompT", 0.8), "test": ("CompX", 0.0), "kept": ("CompS", 0.8),
             "flat": ("CompS", 0.0)}  # fmt: skip
    frames = {
        name: user_flows(make_raw(51 + i, n_users=12, rate=4.0, prefix=p, persistence=q))
        for i, (name, (p, q)) in enumerate(kinds.items())
    }
    space = EvalSpace.fit(frames["train"])
    kept, flat = (
        score(frames["test"], frames[k], frames["train"], space, CFG) for k in ("kept", "flat")
    )
    # two draws of hosts of one kind differ by their noise (about 0.02 here)
    assert kept["acf_mae_train"] < 0.5 * flat["acf_mae_train"]
    assert flat["acf_mae"] < 0.5 * kept["acf_mae"]
    assert goal_of("acf_mae_train") == "min"
    # ``trtr_acf_mae``: the training hosts themselves in the sample's place, the same whatever
    # sample is scored; they read as the sample of hosts like them does, above the flat one
    assert kept["trtr_acf_mae"] == flat["trtr_acf_mae"]
    assert kept["trtr_acf_mae"] == acf.compute(frames["test"], frames["train"])["acf_mae"]
    assert kept["trtr_acf_mae"] == pytest.approx(kept["acf_mae"], abs=0.03)
    assert flat["acf_mae"] < 0.5 * kept["trtr_acf_mae"]
    same = score(frames["train"], frames["flat"], frames["train"], space, CFG)
    assert same["trtr_acf_mae"] == 0.0 and goal_of("trtr_acf_mae") == "min"


def test_random_rows_keep_the_host_mix_whole_hosts_do_not():
    """Two kinds of hosts, one heavy: a random-row draw keeps the pooled share of each kind
    whatever the seed; a whole-host draw swings with the hosts drawn."""
    from nfsynth.metrics.common import sample_rows

    sizes = [5000] + [500] * 10
    flows = pd.DataFrame(
        {
            "user": np.repeat([f"h{i:02d}" for i in range(11)], sizes),
            "ts": np.concatenate([np.arange(n, dtype=float) for n in sizes]),
            "heavy": np.repeat([True] + [False] * 10, sizes),
        }
    )
    pooled = flows["heavy"].mean()
    rows = [sample_rows(flows, 3000, seed)["heavy"].mean() for seed in range(6)]
    hosts = [subsample_hosts(flows, 3000, seed)["heavy"].mean() for seed in range(6)]
    assert max(abs(r - pooled) for r in rows) < 0.05
    assert max(abs(h - pooled) for h in hosts) > 0.2


def test_distance_to_the_training_split_is_zero_for_its_own_flows(users, results):
    """``jsd_train_mean``: the sample's marginals against the training flows. The training
    flows themselves score 0 there (and the test split's difference from them in
    ``jsd_mean``); a column resample of other hosts does not."""
    space = EvalSpace.fit(users.subset("train"))
    train = users.subset("train")
    copy = score(users.subset("test"), train, train, space, CFG)
    assert copy["jsd_train_mean"] == 0.0
    assert copy["jsd_mean"] > 0.0
    reference, resample = results
    assert resample["jsd_train_mean"] > reference["jsd_train_mean"] > 0.0


def test_the_nll_scores_every_test_host_up_to_host_rows_not_max_rows(users):
    """A fitted B1 and a max_rows that holds only some whole test hosts: ``nll_bits`` is the
    model's NLL of every test host (up to ``host_rows``), as the ACF sees them, not of the
    whole hosts ``max_rows`` holds (which read another figure)."""
    from nfsynth.metrics import nll
    from nfsynth.metrics.evaluate import synthetic_flows
    from nfsynth.models.independent import IndependentModel

    space = EvalSpace.fit(users.subset("train"))
    model = IndependentModel().fit(users, seed=1, space=space)
    real, train = users.subset("test"), users.subset("train")
    sample = column_resample(make_raw(21, n_users=8, prefix="synth-"), seed=5)
    sample = synthetic_flows(sample.drop(columns=["src", "dst"]).assign(src="x", dst="y"), INTERNAL)
    max_rows = len(real) // 3
    few = subsample_hosts(real, max_rows, 0)
    assert few["user"].nunique() < real["user"].nunique()
    got = score(
        few, sample, train, space, {**CFG, "max_rows": max_rows}, model=model,
        real_seq=few, real_hosts=real,
    )  # fmt: skip
    assert got["nll_bits"] == nll.compute(real, model)
    assert got["nll_bits"] != nll.compute(few, model)
