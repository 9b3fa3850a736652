"""How challengers see traffic: off, shadow (scored off the response path, never returned) or
canary (a sticky share of entities, by a stable hash of the entity id, gets the challenger).

The configuration is a small JSON file under RETAIL_HOME, changed by the admin endpoint and
re-read on change, so it applies without a restart.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from retail_assets.atomic_files import write_json_atomic

MODES = ("off", "shadow", "canary")


@dataclass(frozen=True)
class Rollout:
    mode: str = "off"
    canary_share: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not 0.0 <= self.canary_share <= 1.0:
            raise ValueError(f"canary_share must be between 0 and 1; got {self.canary_share}")


def bucket(entity_id: str) -> float:
    """A stable position in [0, 1) for an entity: the same id always lands in the same arm."""
    digest = hashlib.blake2b(entity_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class RolloutManager:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._rollouts: dict[str, Rollout] = {}
        self._mtime: float | None = None
        self.reload()

    def reload(self) -> None:
        with self._lock:
            if not self.path.exists():
                self._rollouts, self._mtime = {}, None
                return
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            raw = json.loads(self.path.read_text())
            self._rollouts = {name: Rollout(**value) for name, value in raw.items()}
            self._mtime = mtime

    def get(self, model: str) -> Rollout:
        return self._rollouts.get(model, Rollout())

    def set(self, model: str, rollout: Rollout) -> None:
        with self._lock:
            rollouts = {**self._rollouts, model: rollout}
            write_json_atomic(self.path, {k: asdict(v) for k, v in rollouts.items()})
            self._rollouts = rollouts
            self._mtime = self.path.stat().st_mtime

    def arm(self, model: str, entity_id: str) -> str:
        """For a model that has a challenger: the arm this entity's requests go to."""
        rollout = self.get(model)
        if rollout.mode == "canary" and bucket(entity_id) < rollout.canary_share:
            return "challenger"
        return "champion"

    def shadows(self, model: str) -> bool:
        """For a model that has a challenger: whether it scores in the shadow of the champion."""
        return self.get(model).mode == "shadow"
