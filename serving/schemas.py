"""Shared payload pieces (msgspec structs) and constrained field types."""

from __future__ import annotations

from typing import Annotated

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ModelRef(msgspec.Struct):
    """Which model answered: name, registry version and rollout arm."""

    name: str
    version: str
    arm: str
