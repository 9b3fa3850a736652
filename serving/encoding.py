"""Raw request values -> a model's float64 input row, with the categorical vocabulary stored
in the bundle's signature (code = index, -1 for unknown or missing), exactly as training
encoded them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl


def encode_matrix(frame: pl.DataFrame, signature: dict[str, Any]) -> np.ndarray:
    """Rows of `frame` as the bundle's float64 input matrix (codes from the signature)."""
    columns = []
    for feature in signature["features"]:
        name = feature["name"]
        if "categories" in feature:
            source = feature.get("source") or name.removesuffix("_code")
            vocabulary = {value: code for code, value in enumerate(feature["categories"])}
            columns.append(
                pl.col(source)
                .cast(pl.String)
                .replace_strict(vocabulary, default=-1, return_dtype=pl.Float64)
                .fill_null(-1.0)
                .alias(name)
            )
        else:
            columns.append(pl.col(name).cast(pl.Float64).alias(name))
    return frame.select(columns).to_numpy().astype(np.float64)


class Encoder:
    """One-row encoding for a signature, precomputed once per bundle."""

    def __init__(self, signature: dict[str, Any]):
        self.names = [f["name"] for f in signature["features"]]
        self.sources = [
            (f.get("source") or f["name"].removesuffix("_code")) if "categories" in f else f["name"]
            for f in signature["features"]
        ]
        self.vocabularies = [
            {value: float(code) for code, value in enumerate(f["categories"])}
            if "categories" in f
            else None
            for f in signature["features"]
        ]

    def row(self, values: dict[str, Any]) -> np.ndarray:
        out = np.empty((1, len(self.names)), dtype=np.float64)
        for j, (source, vocabulary) in enumerate(zip(self.sources, self.vocabularies, strict=True)):
            value = values.get(source)
            if vocabulary is not None:
                out[0, j] = vocabulary.get(value, -1.0) if value is not None else -1.0
            elif value is None:
                out[0, j] = math.nan
            else:
                out[0, j] = float(value)
        return out
