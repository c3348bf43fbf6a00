"""What the scripts under bench/ do besides timing: compare_real's scratch config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_real_passes_a_path_outside_its_copy_as_absolute(tmp_path: Path) -> None:
    """A dataset path the scratch copy holds stays as given; one relative to the repository
    that the copy lacks (as ``../shared/data`` beside the checkout) becomes absolute; one
    that exists nowhere is refused, naming the dataset."""
    compare = _module("compare_real")
    root = tmp_path / "scratch"
    (root / "config").mkdir(parents=True)
    (root / "data").mkdir()
    config = tmp_path / "real.yaml"
    doc = {"datasets": {"kept": {"path": "data"}, "shared": {"path": "bench/results"}}}
    config.write_text(yaml.safe_dump(doc))
    out = yaml.safe_load(compare.scratch_config(config, root).read_text())
    assert out["datasets"]["kept"]["path"] == "data"
    assert out["datasets"]["shared"]["path"] == str((REPO / "bench/results").resolve())
    doc["datasets"]["gone"] = {"path": "no/such/folder"}
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(FileNotFoundError, match="datasets.gone.path"):
        compare.scratch_config(config, root)
