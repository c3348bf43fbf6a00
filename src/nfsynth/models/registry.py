"""Model registry: config ``kind`` -> class. Heavy or optional models are imported lazily."""

from __future__ import annotations

import importlib
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


def load(path: str) -> FlowModel:
    """Load any saved model: its ``model.json`` names the kind (data, not code)."""
    import json
    from pathlib import Path

    kind = json.loads((Path(path) / "model.json").read_text())["kind"]
    return get(kind).load(path)
