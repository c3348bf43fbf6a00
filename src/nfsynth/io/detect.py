"""The format registry and ``auto`` detection from a file's first lines."""

from __future__ import annotations

import re
from pathlib import Path

from nfsynth.io.errors import IngestError
from nfsynth.io.lanl2015 import Lanl2015
from nfsynth.io.lanl2017 import Lanl2017
from nfsynth.io.nfdump import NfdumpCsv
from nfsynth.io.readers import FlowFormat
from nfsynth.io.sources import head_text
from nfsynth.io.ugr16 import Ugr16

FORMATS: dict[str, FlowFormat] = {f.name: f for f in (Lanl2017(), Lanl2015(), Ugr16(), NfdumpCsv())}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")


def get_format(name: str) -> FlowFormat:
    """The reader of format ``name`` (one of ``FORMATS``)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; known: {', '.join(FORMATS)}, auto") from None


def detect_format(first_lines: list[str]) -> str | None:
    """Format name from the first lines of a file, or None when nothing fits.

    Header ``ts,te,td,...``: nfdump_csv; header ``te,td,sa,...``: ugr16; headerless lines of 13
    fields starting with a date-time: ugr16; 11 numeric-led fields: lanl2017; 9: lanl2015.
    """
    lines = [ln.strip() for ln in first_lines if ln.strip()]
    if not lines:
        return None
    head = lines[0].lower().split(",")
    if head[:3] == ["ts", "te", "td"]:
        return "nfdump_csv"
    if head[:3] == ["te", "td", "sa"]:
        return "ugr16"
    data = lines[1] if len(lines) > 1 and not _NUMBER.match(head[0]) else lines[0]
    fields = data.split(",")
    if len(fields) == 13 and _DATETIME.match(fields[0]):
        return "ugr16"
    if _NUMBER.match(fields[0]) and len(fields) == 11:
        return "lanl2017"
    if _NUMBER.match(fields[0]) and len(fields) == 9:
        return "lanl2015"
    return None


def sniff(path: Path, fmt: str) -> tuple[FlowFormat, str]:
    """The format of ``path`` (detected when ``fmt`` is ``auto``) and its first line."""
    text = head_text(path)
    first_lines = text.split("\n")[:6]
    if fmt == "auto":
        name = detect_format(first_lines[:-1] if len(first_lines) > 1 else first_lines)
        if name is None:
            raise IngestError(path, f"cannot detect the format from {first_lines[0][:120]!r}")
        fmt = name
    return get_format(fmt), first_lines[0]
