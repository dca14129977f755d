"""Shared fixtures: small FASTA files written on the fly, the real genomes when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
SHARED_GENOMES = Path(
    os.environ.get(
        "KMERVAE_GENOMES", Path(__file__).resolve().parents[2] / "shared" / "data" / "genomes"
    )
)


def random_fasta(
    path: Path, n: int = 20, seed: int = 0, min_len: int = 50, max_len: int = 3000, width: int = 60
) -> dict[str, str]:
    """Write ``n`` random records (some with N runs and lower case); return id -> sequence."""
    rng = np.random.default_rng(seed)
    records = {}
    with open(path, "w") as fh:
        for i in range(n):
            seq = "".join(rng.choice(list("ACGT"), int(rng.integers(min_len, max_len))))
            if i % 3 == 0 and len(seq) > 20:
                j = int(rng.integers(0, len(seq) - 10))
                seq = seq[:j] + "NNNNN" + seq[j + 5 :].lower()
            records[f"contig_{i}"] = seq
            fh.write(f">contig_{i} len={len(seq)}\n")
            for k in range(0, len(seq), width):
                fh.write(seq[k : k + width] + "\n")
    return records


@pytest.fixture
def fragments_fasta() -> Path:
    return DATA / "fragments.fa"


@pytest.fixture
def genomes_dir() -> Path:
    if not (SHARED_GENOMES / "catalog.tsv").exists():
        pytest.skip("the shared real-genome collection is not beside this checkout")
    return SHARED_GENOMES


@pytest.fixture
def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import torch`` (and its submodules) fails for the test, as where the ``train``
    extra is not installed."""
    import builtins

    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)


@pytest.fixture(scope="module")
def bench():
    """``benchmarks/genome_benchmark.py`` as a module (it is a script, not a package)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "genome_benchmark.py"
    spec = importlib.util.spec_from_file_location("genome_benchmark", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
