"""Contigs in known groups for the clustering tests: a store, its k-NN graph, embeddings,
FASTA."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from kmervae.index import create_index, open_index
from kmervae.index.knn import knn_graph
from kmervae.io.embeddings import EmbeddingsWriter

#: for tests that run the mcl package's programs (.ci/run installs them)
needs_mcl = pytest.mark.skipif(
    shutil.which("mcl") is None or shutil.which("rcl") is None,
    reason="the mcl package (mcl, mcxload, rcl) is not installed",
)


def blobs(n: int = 1200, groups: int = 6, dim: int = 16, seed: int = 0):
    """(vectors float32 (n, dim), true group int64 (n,), lengths int64, gc float32): well
    separated Gaussian groups, each group with its own GC level."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim)) * 4
    truth = rng.integers(0, groups, n)
    x = (centres[truth] + rng.normal(size=(n, dim))).astype(np.float32)
    lengths = rng.integers(1000, 20_000, n).astype(np.int64)
    gc = (0.3 + 0.06 * truth + rng.normal(0, 0.004, n)).astype(np.float32)
    return x, truth, lengths, gc


def write_store(path: Path, x, lengths, gc, ids=None, backend: str = "exact") -> Path:
    ids = ids or [f"c{i}" for i in range(len(x))]
    schema = {"length": "int64", "gc": "float32", "source": "string"}
    with create_index(path, backend=backend, dim=x.shape[1], schema=schema) as store:
        source = np.array(["blobs.fa"] * len(x))
        store.add(ids, x, {"length": lengths, "gc": gc, "source": source})
        store.save({"action": "build"})
    return path


def write_graph(store: Path, path: Path, k: int = 15) -> Path:
    knn_graph(open_index(store), path, k)
    return path


def write_embeddings(path: Path, x, lengths, gc, ids=None) -> Path:
    ids = ids or [f"c{i}" for i in range(len(x))]
    with EmbeddingsWriter(path, x.shape[1], columns=("lengths", "gc")) as writer:
        writer.append(x, lengths=lengths, gc=gc)
        writer.append_ids(ids)
        writer.close({"model": {"fingerprint": "test"}})
    return path


def write_fasta(path: Path, ids, seed: int = 0, length: int = 120) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    records = {}
    with open(path, "w") as fh:
        for ident in ids:
            seq = "".join(rng.choice(list("ACGT"), length))
            records[ident] = seq
            fh.write(f">{ident} some description\n{seq[:70]}\n{seq[70:]}\n")
    return records
