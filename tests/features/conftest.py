"""Fixtures of the feature tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features.flowdata import ROLE_ROWS, canonical_table, write_flows


@pytest.fixture
def role_flows(tmp_path: Path) -> Path:
    return write_flows(canonical_table(ROLE_ROWS), tmp_path)
