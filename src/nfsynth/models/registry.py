"""Model registry: config ``kind`` -> class. Heavy or optional models are imported lazily."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from nfsynth.models.base import FlowModel

#: kind -> "module:Class"
KINDS: dict[str, str] = {
    "independent": "nfsynth.models.independent:IndependentModel",
    "bayesnet": "nfsynth.models.bayesnet:BayesNetModel",
    "neural": "nfsynth.models.neural:NeuralFlowModel",
    "ctgan": "nfsynth.models.peers:CTGANModel",
    "tvae": "nfsynth.models.peers:TVAEModel",
}


def get(kind: str) -> type[FlowModel]:
    """The model class of a config ``kind``."""
    if kind not in KINDS:
        raise KeyError(f"unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    module_name, class_name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build(spec: dict[str, Any]) -> FlowModel:
    """A model from its config slice: ``{"kind": ..., **hyperparameters}``."""
    params = dict(spec)
    kind = params.pop("kind")
    return get(kind)(**params)


def load(path: str | Path) -> FlowModel:
    """Load any saved model: its ``model.json`` names the kind (data, not code). A folder
    without a readable ``model.json`` naming a known kind is refused with the file (and
    the line of bad JSON)."""
    meta = Path(path) / "model.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: no saved model here (a model folder holds model.json)")
    try:
        kind = json.loads(meta.read_text())["kind"]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{meta}: no field 'kind' (the model kind)") from exc
    if kind not in KINDS:
        raise ValueError(
            f"{meta}: field 'kind': unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}"
        )
    return get(kind).load(path)
