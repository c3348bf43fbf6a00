"""The generator interface (design §5) and what every model shares.

A model is built from its config slice (``models.<name>``: ``kind`` plus hyperparameters)::

    model = registry.build({"kind": "bayesnet", "max_bins": 32})
    model.fit(users, seed=1)                 # users: features.tables.UserTables
    table = model.sample(24, start, 1.0, seed=1)   # pyarrow Table, schema.SAMPLE_SCHEMA
    nats = model.log_prob(users.subset("test"))    # (n_flows,) float64, evaluation space
    model.save(path); same = type(model).load(path)

Saved models are data only: ``model.json`` (kind, hyperparameters, fitted scalars and
lists), ``arrays.npz`` (loaded with ``allow_pickle=False``), the evaluation space
(``evalspace.json``) and, for torch models, a ``state_dict`` loaded with
``weights_only=True``. Loading never executes code from a file.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from nfsynth.evalspace import EvalSpace
from nfsynth.schema import CANONICAL_COLUMNS, ROLES, SAMPLE_SCHEMA

FORMAT_VERSION = 1


class FlowModel(ABC):
    """Base class of every generator. ``__init__`` only stores hyperparameters."""

    kind: ClassVar[str] = ""
    #: whether ``sample(role=...)`` conditions the hosts on the role (the neural model);
    #: elsewhere the role only names the synthetic hosts
    conditions_on_role: ClassVar[bool] = False

    def __init__(self, **hyperparameters: Any) -> None:
        self.hyperparameters: dict[str, Any] = dict(hyperparameters)
        self.space_: EvalSpace | None = None

    # -- the interface ---------------------------------------------------------------
    @abstractmethod
    def fit(self, users: Any, *, seed: int, space: EvalSpace | None = None) -> FlowModel:
        """Learn from the training split of ``users`` (a ``UserTables``); returns self."""

    @abstractmethod
    def sample(
        self,
        n_users: int,
        start: datetime | float,
        days: float,
        *,
        seed: int,
        role: str | None = None,
    ) -> pa.Table:
        """Synthetic flows of ``n_users`` hosts over ``days`` days from ``start`` (UTC).

        Returns a table with ``schema.SAMPLE_SCHEMA``, sorted by (user, ts). The same fitted
        model and seed give identical rows.
        """

    @abstractmethod
    def log_prob(self, flows: Any) -> np.ndarray:
        """Log-probability (nats) of each flow in the evaluation space, shape (n_flows,).

        ``flows``: a user-flow DataFrame (docs/architecture.md) or a ``UserTables``.
        """

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the fitted model to directory ``path`` (data only)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> FlowModel:
        """Read a model written by :meth:`save`."""

    # -- helpers shared by the models ------------------------------------------------
    def _space_for(self, users: Any, space: EvalSpace | None) -> EvalSpace:
        """The evaluation space to score in: the given one, the tables' own, or fitted."""
        if space is not None:
            return space
        own = getattr(users, "space", None)
        if own is not None:
            return own
        return EvalSpace.fit(train_flows(users))

    def _check_fitted(self) -> None:
        if self.space_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    def _check_sample_args(self, role: str | None) -> None:
        """Before sampling: the model is fitted and ``role`` is None or one of ``schema.ROLES``."""
        self._check_fitted()
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")


def train_flows(users: Any) -> pd.DataFrame:
    """The training rows of a ``UserTables`` (or a DataFrame with a ``split`` column)."""
    if isinstance(users, pd.DataFrame):
        return users[users["split"] == "train"] if "split" in users else users
    return users.subset("train")


def flows_frame(flows: Any, split: str | None = None) -> pd.DataFrame:
    """A user-flow DataFrame from a DataFrame or a ``UserTables`` (optionally one split)."""
    if isinstance(flows, pd.DataFrame):
        return flows
    return flows.subset(split) if split else flows.flows


def start_seconds(start: datetime | float | str) -> float:
    """Epoch seconds (UTC) of a start given as datetime, ISO text or number."""
    if isinstance(start, int | float | np.floating | np.integer):
        return float(start)
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return start.timestamp()


def synthetic_user_names(n_users: int, role: str | None = None) -> list[str]:
    """Names of synthetic hosts: ``synth-0000``, ... (``synth-<role>-0000`` with a role)."""
    prefix = f"synth-{role}-" if role else "synth-"
    return [f"{prefix}{i:04d}" for i in range(n_users)]


def to_sample_table(frame: pd.DataFrame) -> pa.Table:
    """Build the sample table from a frame with ``user, direction, peer, ts, duration, proto,
    sport, dport, packets, bytes`` (and optionally ``rev_packets, rev_bytes``).

    ``src``/``dst`` follow the direction: ``out`` -> (user, peer), ``in`` -> (peer, user).
    Rows are sorted by (user, ts) and typed as ``schema.SAMPLE_SCHEMA``.
    """
    df = frame.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    out = df["direction"].astype(str).to_numpy() == "out"
    user = df["user"].astype(str).to_numpy()
    peer = df["peer"].astype(str).to_numpy()
    columns: dict[str, Any] = {
        "ts": df["ts"].to_numpy(dtype=float),
        "duration": np.clip(df["duration"].to_numpy(dtype=float), 0.0, None),
        "src": np.where(out, user, peer),
        "dst": np.where(out, peer, user),
        "proto": df["proto"].to_numpy(dtype=np.int64).clip(0, 255).astype(np.uint8),
        "sport": df["sport"].astype(str).to_numpy(),
        "dport": df["dport"].astype(str).to_numpy(),
        "packets": np.rint(df["packets"].to_numpy(dtype=float)).clip(0).astype(np.int64),
        "bytes": np.rint(df["bytes"].to_numpy(dtype=float)).clip(0).astype(np.int64),
    }
    for name in ("rev_packets", "rev_bytes"):
        if name in df:
            values = df[name].to_numpy(dtype=float)
            columns[name] = pa.array(
                np.rint(np.nan_to_num(values)).clip(0).astype(np.int64), mask=np.isnan(values)
            )
        else:
            columns[name] = pa.nulls(len(df), pa.int64())
    columns["user"] = user
    columns["direction"] = df["direction"].astype(str).to_numpy()
    arrays = []
    for f in SAMPLE_SCHEMA:
        value = columns[f.name]
        array = value if isinstance(value, pa.Array) else pa.array(value)
        arrays.append(
            array.cast(f.type) if not pa.types.is_dictionary(f.type) else array.dictionary_encode()
        )
    return pa.Table.from_arrays(arrays, schema=SAMPLE_SCHEMA)


def write_model_files(
    path: str | Path,
    kind: str,
    hyperparameters: dict,
    state: dict,
    arrays: dict[str, np.ndarray],
    space: EvalSpace,
) -> None:
    """Write ``model.json`` (kind, hyperparameters, JSON state), ``arrays.npz`` and
    ``evalspace.json`` into directory ``path``."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "hyperparameters": hyperparameters,
        "state": state,
    }
    (root / "model.json").write_text(json.dumps(meta, indent=1, default=_json_default))
    np.savez(root / "arrays.npz", **arrays)
    space.save(root / "evalspace.json")


def read_model_files(
    path: str | Path, kind: str
) -> tuple[dict, dict, dict[str, np.ndarray], EvalSpace]:
    """Read what :func:`write_model_files` wrote: (hyperparameters, state, arrays, space)."""
    root = Path(path)
    meta = json.loads((root / "model.json").read_text())
    if meta.get("kind") != kind:
        raise ValueError(f"{root}/model.json: holds a {meta.get('kind')!r} model, not {kind!r}")
    with np.load(root / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta["hyperparameters"], meta["state"], arrays, EvalSpace.load(root / "evalspace.json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = [
    "CANONICAL_COLUMNS",
    "FlowModel",
    "flows_frame",
    "read_model_files",
    "start_seconds",
    "synthetic_user_names",
    "to_sample_table",
    "train_flows",
    "write_model_files",
]
