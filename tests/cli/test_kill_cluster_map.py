"""``cluster`` and ``map`` stopped at random points (SIGKILL, SIGINT, SIGTERM): never an
output that looks complete but is not, one line for the signals that can be caught, and a
rerun that gives what an uninterrupted run gives."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from cluster_factory import blobs, needs_mcl, write_embeddings, write_graph, write_store
from hostile import stopped_then_rerun

from kmervae.cli import main

SIGNALS = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM]


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    root = tmp_path_factory.mktemp("killed")
    x, _truth, lengths, gc = blobs(1500)
    store = write_store(root / "store", x, lengths, gc)
    graph = write_graph(store, root / "graph")
    emb = write_embeddings(root / "emb", x, lengths, gc)
    return root, graph, emb


@needs_mcl
@pytest.mark.kill_point
@pytest.mark.parametrize(("sig", "after"), [(s, a) for s in SIGNALS for a in (0.0, 0.4)])
def test_cluster_stopped_and_rerun_gives_the_same_clusters(space, tmp_path, sig, after):
    _root, graph, _emb = space
    options = ["-I", "1.4,2", "--method", "mcl,leiden", "-t", "1"]
    reference = tmp_path / "reference"
    assert main(["cluster", str(graph), "-o", str(reference), *options, "-q"]) == 0
    out = tmp_path / "out"

    def same(folder):
        for name in ("clusters.tsv", "clusters.mcl-I1.4.tsv", "clusters.leiden-r1.tsv"):
            assert (folder / name).read_text() == (reference / name).read_text(), name

    stopped_then_rerun(["cluster", graph, "-o", out, *options], out, sig, after, same)


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", SIGNALS)
def test_map_stopped_and_rerun_gives_the_same_map(space, tmp_path, sig):
    _root, _graph, emb = space
    options = ["-t", "1", "--n-iter", "150", "--early-iter", "50", "--dpi", "30"]
    reference = tmp_path / "reference"
    assert main(["map", str(emb), "-o", str(reference), *options, "-q"]) == 0
    out = tmp_path / "out"

    def same(folder):
        coordinates = [np.load(f / "coordinates.npy") for f in (folder, reference)]
        np.testing.assert_array_equal(*coordinates)

    stopped_then_rerun(["map", emb, "-o", out, *options], out, sig, 0.3, same)
