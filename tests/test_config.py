"""Bad config is refused by the schema, with the key and the reason, before any job runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from tests.workflow.helpers import REPO, scratch_copy, snakemake

SCHEMA = str(REPO / "config" / "schema.yaml")


def _default():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_and_test_configs_are_valid():
    validate(_default(), SCHEMA)
    validate(yaml.safe_load((REPO / "config" / "test.yaml").read_text()), SCHEMA)
    lanl = yaml.safe_load((REPO / "config" / "lanl2015.yaml").read_text())
    validate(lanl, SCHEMA)
    assert (REPO / lanl["datasets"]["lanl2015"]["path"]).is_dir()
    ugr = yaml.safe_load((REPO / "config" / "ugr16.yaml").read_text())
    merged = _default()  # it is given after the default (its data lies beside the checkout)
    merged["datasets"] = ugr["datasets"]
    merged["users"].update(ugr["users"])
    merged["evaluation"].update(ugr["evaluation"])
    validate(merged, SCHEMA)
    assert ugr["datasets"]["ugr16full"]["path"] == "../shared/data/ugr16-2016-04-11"
    assert merged["users"]["top_n"] >= 46 and merged["users"]["split"]["mode"] == "auto"


def test_defaults_are_filled_in():
    cfg = {"datasets": {"d": {"format": "simulate"}}, "models": {"m": {"kind": "bayesnet"}}}
    validate(cfg, SCHEMA)
    assert cfg["windows"] == {"seconds": 300, "context": 36}
    assert cfg["seeds"] == [1, 2, 3, 4, 5]
    assert cfg["models"]["m"]["max_bins"] == 32


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda c: c["windows"].update(seconds=-5), "seconds"),
        (lambda c: c["users"].update(top_n="many"), "top_n"),
        (lambda c: c["datasets"]["sim"].update(format="pcap"), "format"),
        (lambda c: c["models"]["b2"].update(bin_rule="guess"), "bin_rule"),
        (lambda c: c["models"]["b1"].update(not_a_key=1), "not_a_key"),
        (lambda c: c["users"]["split"].update(mode="random"), "mode"),
        (lambda c: c.update(seeds=[]), "seeds"),
        (lambda c: c["sampling"].update(n_users="all"), "n_users"),
        (lambda c: c["sampling"].update(n_users=0), "n_users"),
        (lambda c: c["models"].update(x={"kind": "magic"}), "kind"),
        (lambda c: c["models"]["neural"].update(host_rhythm=-1), "host_rhythm"),
        (lambda c: c["models"]["neural"].update(self_history=1.5), "self_history"),
    ],
)
def test_bad_values_are_refused_with_the_key(edit, needle):
    cfg = copy.deepcopy(_default())
    edit(cfg)
    with pytest.raises(Exception) as err:
        validate(cfg, SCHEMA)
    assert needle in str(err.value)


def test_snakemake_refuses_bad_config_before_any_job(tmp_path: Path):
    work = scratch_copy(tmp_path / "w")
    bad = yaml.safe_load((work / "config" / "test.yaml").read_text())
    bad["windows"] = {"seconds": 0}
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(work, "-n", "results/report.html", configfile="config/bad.yaml", check=False)
    assert proc.returncode != 0
    assert "seconds" in proc.stdout and "minimum" in proc.stdout
    assert not (work / "results").exists()


def test_user_configfile_datasets_replace_the_defaults(tmp_path: Path):
    """design §1: a --configfile holding only `datasets` runs on those datasets alone."""
    from tests.workflow.helpers import planned_jobs

    work = scratch_copy(tmp_path / "w")
    mine = {
        "datasets": {
            "mine": {
                "format": "ugr16",
                "path": "tests/data/ugr16-mini",
                "internal": ["42.219.0.0/16"],
            }
        }
    }
    (work / "my.yaml").write_text(yaml.safe_dump(mine))
    proc = snakemake(work, "-n", "ingest_only", configfile="my.yaml")
    assert planned_jobs(proc.stdout) == {"ingest": 1, "ingest_only": 1}
    assert "results/mine/flows/manifest.json" in proc.stdout
    assert "results/sim/" not in proc.stdout


def test_model_jobs_claim_the_threads_their_config_gives(tmp_path: Path):
    """A neural job claims its torch threads (`cpu_threads`), not a fixed two: a one-thread
    job must not hold a second core idle; 0 (all threads) claims two."""
    from tests.workflow.helpers import write_config

    work = scratch_copy(tmp_path / "w")
    targets = ("results/sim/models/neural/seed1", "results/sim/models/b2/seed1")

    def claimed(configfile: str) -> dict[str, int]:
        out = snakemake(work, "-n", *targets, configfile=configfile).stdout
        jobs = {}
        for block in out.split("rule train:")[1:]:
            block = block.split("\n\n")[0]
            model = block.split("model=")[1].split(",")[0]
            line = [x for x in block.splitlines() if x.strip().startswith("threads:")]
            jobs[model] = int(line[0].split(":")[1]) if line else 1  # printed only when > 1
        return jobs

    for threads, want in ((1, 1), (2, 2), (0, 2)):
        name = f"threads{threads}.yaml"
        write_config(work, name, lambda c, t=threads: c["models"]["neural"].update(cpu_threads=t))
        assert claimed(f"config/{name}") == {"neural": want, "b2": 1}


def test_a_later_configfile_merges_into_the_model_it_names(tmp_path: Path):
    """``--configfile config/test.yaml tweak.yaml``, where tweak.yaml sets one option of the
    neural model: the run keeps the test config's models (the neural one's kind and the rest
    of its settings) and takes the option (its job claims the 2 threads it now asks for)."""
    work = scratch_copy(tmp_path / "w")
    (work / "tweak.yaml").write_text(
        yaml.safe_dump({"models": {"neural": {"cpu_threads": 2, "activity_modulation": True}}})
    )
    target = "results/sim/models/neural/seed1"
    out = snakemake(work, "-n", target, configfile=("config/test.yaml", "tweak.yaml")).stdout
    block = out.split("rule train:")[1].split("\n\n")[0]
    assert "model=neural" in block
    assert any(x.strip() == "threads: 2" for x in block.splitlines()), block
    plain = snakemake(work, "-n", target).stdout.split("rule train:")[1].split("\n\n")[0]
    assert not any(x.strip().startswith("threads:") for x in plain.splitlines()), plain
