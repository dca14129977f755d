"""Small random profile datasets for tests, written with :class:`DatasetWriter`."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmervae.io.dataset import DatasetWriter, open_dataset
from kmervae.kmers.layout import FeatureLayout

#: 4-mers only: 136 features, small and also a legacy layout (137 columns).
SMALL_LAYOUT = FeatureLayout((4,))


@dataclass
class Expected:
    """What a dataset holds, row by row: float32 features (n x F), int64 lengths, float32
    gc, int64 ambiguous, the name of each row's source and the ids."""

    path: Path
    ids: list[str]
    features: np.ndarray
    lengths: np.ndarray
    gc: np.ndarray
    ambiguous: np.ndarray
    source_names: list[str]

    def rows(self) -> dict[str, tuple]:
        """id -> (features, length, gc, ambiguous, source name)."""
        return {
            ident: (self.features[i], self.lengths[i], self.gc[i], self.ambiguous[i], src)
            for i, (ident, src) in enumerate(zip(self.ids, self.source_names, strict=True))
        }


def write_dataset(
    path: Path,
    n: int,
    *,
    seed: int = 0,
    ids: list[str] | None = None,
    layout: FeatureLayout = SMALL_LAYOUT,
    dtype: str = "float32",
    fmt: str = "native",
    n_sources: int = 2,
    unknown_sources: bool = False,
    gzip_ids: bool = False,
) -> Expected:
    """Write ``n`` random rows; legacy ``fmt`` writes ``path.npy`` + ``path.txt`` (or
    ``.txt.gz`` with ``gzip_ids``) and returns the ``.npy`` path."""
    rng = np.random.default_rng(seed)
    if ids is None:
        ids = [f"{path.name}_r{int(rng.integers(10**9))}_{i}" for i in range(n)]
    features = rng.random((n, layout.n_features), dtype=np.float32)
    if dtype == "float16":
        features = features.astype(np.float16).astype(np.float32)
    lengths = rng.integers(100, 10**6, n).astype(np.int64)
    gc = rng.random(n, dtype=np.float32)
    ambiguous = rng.integers(0, 50, n).astype(np.int64)
    sources = rng.integers(0, n_sources, n).astype(np.int32)
    if unknown_sources:
        sources[::2] = -1
    with DatasetWriter(path, layout, dtype, fmt) as writer:
        names = [f"{path.name}_part{j}.fa" for j in range(n_sources)]
        for name in names:
            writer.add_source({"name": name, "path": f"/data/{name}"})
        half = n // 2  # two appends, to cross a block boundary
        for lo, hi in ((0, half), (half, n)):
            writer.append(
                features[lo:hi],
                lengths[lo:hi],
                ids[lo:hi],
                gc=gc[lo:hi],
                ambiguous=ambiguous[lo:hi],
                sources=sources[lo:hi],
            )
        out = writer.close({"test": True})
    if fmt == "legacy":
        txt = out.with_suffix(".txt")
        if gzip_ids:
            with open(txt, "rb") as src, gzip.open(str(txt) + ".gz", "wb") as dst:
                dst.write(src.read())
            os.unlink(txt)
        ds = open_dataset(out)
        return Expected(
            out,
            ids,
            features,
            lengths,
            ds.gc(),
            np.full(n, -1, np.int64),
            [str(out)] * n,
        )
    row_names = [names[s] if s >= 0 else str(out) for s in sources]
    return Expected(out, ids, features, lengths, gc, ambiguous, row_names)


def read_back(path: Path) -> Expected:
    """Everything an output dataset holds, loaded (tests only: small data)."""
    ds = open_dataset(path)
    ds.verify_ids()
    names = ds.source_names
    sources = ds.sources()
    row_names = [names[s] if s >= 0 else "?" for s in sources]
    if ds.kind == "legacy":
        row_names = ["?"] * ds.n_rows
    return Expected(
        ds.path,
        ds.ids(),
        np.asarray(ds.features, np.float32),
        ds.lengths(),
        ds.gc(),
        ds.ambiguous(),
        row_names,
    )


def hidden_leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders (``.name...``) left in ``folder``."""
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))
