"""Same inputs and seed, same results: the whole chain (profile, concat --shuffle --split,
train on the CPU, embed, index, knn, cluster, map) run twice, with different thread counts
where the result must not depend on them, gives identical arrays and tables. Timestamps,
logs and durations are the only things allowed to differ. (Training on the CPU is
reproducible at a given thread count, which run.json records: PyTorch's batch norm reduces
in an order that depends on it.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cluster_factory import needs_mcl
from conftest import random_fasta

from kmervae.cli import main

#: files whose content records when and how long, not what
_NOT_COMPARED = {".json", ".log", ".png", ".pdf", ".jsonl", ".pt", ".md"}


def _chain(root: Path, fasta: Path, threads: int) -> Path:
    def run(*argv: object) -> None:
        assert main([str(a) for a in argv] + ["-q"]) == 0, argv

    t = str(threads)
    root.mkdir()
    run("profile", fasta, "-o", root / "all.kmv", "-t", t)
    run("concat", root / "all.kmv", "--shuffle", "--split", "0.8", "--seed", "7",
        "-o", root / "set")  # fmt: skip
    run("train", root / "set.train", "--validation", root / "set.validation", "-o", root / "run",
        "--hidden", "48", "--latent", "8", "--epochs", "3", "--batch-size", "32", "--seed", "3",
        "--fidelity-every", "0", "--device", "cpu", "-t", "1")  # fmt: skip
    run("embed", root / "run" / "model", root / "all.kmv", "-o", root / "all.emb", "-t", t)
    run("index", "build", root / "all.emb", "-o", root / "store", "--backend", "exact")
    run("knn", root / "store", "-k", "10", "-o", root / "graph", "-t", t)
    run("cluster", root / "graph", "-o", root / "clusters", "--method", "mcl,leiden",
        "-I", "2", "-t", t)  # fmt: skip
    run("map", root / "all.emb", "--graph", root / "graph", "-o", root / "map", "-t", "1",
        "--perplexity", "3", "--n-iter", "60", "--early-iter", "20", "--dpi", "30")  # fmt: skip
    return root


def _same(a: Path, b: Path) -> list[str]:
    """Relative paths of the files that differ between two output trees (and are compared)."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    assert names == {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    differ = []
    for name in sorted(names):
        if name.suffix in _NOT_COMPARED:
            continue
        x, y = a / name, b / name
        if name.suffix == ".npy":
            same = np.array_equal(np.load(x), np.load(y), equal_nan=True)
        elif name.suffix == ".safetensors":
            from safetensors.numpy import load_file

            ta, tb = load_file(x), load_file(y)
            same = ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)
        else:
            same = x.read_bytes() == y.read_bytes()
        if not same:
            differ.append(str(name))
    return differ


@needs_mcl
def test_the_whole_chain_twice_gives_identical_results(tmp_path):
    fasta = tmp_path / "contigs.fa"
    random_fasta(fasta, n=240, seed=5, min_len=1000, max_len=4000)
    first = _chain(tmp_path / "a", fasta, threads=1)
    second = _chain(tmp_path / "b", fasta, threads=2)
    assert _same(first, second) == []
    # the training histories agree in every number but the clock
    clock = ("time", "second", "per_s")
    histories = [
        [
            {k: v for k, v in json.loads(line).items() if not any(w in k for w in clock)}
            for line in (root / "run" / "history.jsonl").read_text().splitlines()
        ]
        for root in (first, second)
    ]
    assert histories[0] == histories[1]
    # and the runs record the seeds they used
    assert json.loads((first / "run" / "run.json").read_text())["train_config"]["seed"] == 3


@pytest.mark.parametrize("threads", [1, 2])
def test_profiles_do_not_depend_on_threads(tmp_path, threads):
    fasta = tmp_path / "contigs.fa"
    random_fasta(fasta, n=60, seed=2)
    assert main(["profile", str(fasta), "-o", str(tmp_path / "ref.kmv"), "-q"]) == 0
    assert main(["profile", str(fasta), "-o", str(tmp_path / "t.kmv"), "-t", str(threads),
                 "-q"]) == 0  # fmt: skip
    assert _same(tmp_path / "ref.kmv", tmp_path / "t.kmv") == []
