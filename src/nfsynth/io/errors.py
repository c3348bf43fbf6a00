"""Errors raised by ingest: each names the input file (and the line and field where known)."""

from __future__ import annotations

from pathlib import Path


class IngestError(Exception):
    """Input that cannot be ingested: unreadable, not the declared format, or too many rejects.

    ``path`` is the input file; the message starts with it, so a one-line report is enough.
    """

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class RejectRatioError(IngestError):
    """More than ``max_reject_ratio`` of an input's data lines were rejected."""
