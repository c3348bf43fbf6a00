"""The built-in simulator of LANL-2017-format netflow with planted structure (docs/simulator.md).

- ``simulate_lanl2017(out_dir, ...)``: day files, ``labels.csv`` and ``truth.json``;
- ``generate_scan(rng, scanner, target, start, kind, speed)``: the flows of one port scan;
- ``generate_normal_activity(rng, host, start, seconds)``: a workstation's normal flows.
"""

from nfsynth.simulate.lanl2017 import day_file_name, simulate_lanl2017
from nfsynth.simulate.scans import LABEL_COLUMNS, generate_normal_activity, generate_scan

__all__ = [
    "LABEL_COLUMNS",
    "day_file_name",
    "generate_normal_activity",
    "generate_scan",
    "simulate_lanl2017",
]
