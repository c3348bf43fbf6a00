"""Running the workflow in a scratch copy of the repository, and reading Snakemake's plan."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPIED = ["Snakefile", "config", "workflow", "data", "tests/data"]


def scratch_copy(dest: Path) -> Path:
    """A copy of what the workflow needs (Snakefile, config, rules, scripts, data) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(
                src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(src, target)
    return dest


def write_config(workdir: Path, name: str, edit=None) -> Path:
    """``config/test.yaml`` of ``workdir``, changed by ``edit(cfg)``, written as ``name``."""
    cfg = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    if edit is not None:
        edit(cfg)
    path = workdir / "config" / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path,
    *args: str,
    configfile: str | tuple[str, ...] = "config/test.yaml",
    timeout: int = 1200,
    check: bool = True,
):
    """Run Snakemake in ``workdir``; returns the CompletedProcess (stdout and stderr merged).
    ``configfile``: one path, or several (later ones merge into earlier ones)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    files = (configfile,) if isinstance(configfile, str) else tuple(configfile)
    cmd = [
        SNAKEMAKE,
        *args,
        "--cores",
        "2",
        "--configfile",
        *files,
    ]  # --configfile takes several values: last
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}"
        )
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a (dry) run; {} when nothing is planned."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Job stats:"):
            for row in lines[i + 1 :]:
                match = re.match(r"^\s*([A-Za-z_][\w]*)\s+(\d+)\s*$", row)
                if match and match.group(1) != "total":
                    counts[match.group(1)] = int(match.group(2))
                elif row.strip().startswith("total"):
                    break
            break
    return counts


def planned_outputs(output: str) -> list[str]:
    """Output files named in a dry run's job listings ("output: a, b")."""
    outs: list[str] = []
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("output:"):
            outs.extend(part.strip() for part in stripped[len("output:") :].split(","))
    return outs
