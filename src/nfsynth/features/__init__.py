"""nfsynth.features: users, per-user flow tables, 5-minute windows and temporal analysis.

- ``select``: internal filter, host counts, roles, shards, the train/val/test split.
- ``userflows``: per-user flow tables; ``derive_features`` for real and synthetic flows alike.
- ``rolling``: Kitsune-style rolling statistics.
- ``windows``: 5-minute windows on the global grid and each flow's context.
- ``tables``: ``UserTables``, what models receive.
- ``temporal``: ACF, look-back and dt-versus-hour analysis.
"""

from nfsynth.features.tables import UserTables
from nfsynth.features.userflows import derive_features

__all__ = ["UserTables", "derive_features"]
