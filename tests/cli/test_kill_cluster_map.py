"""``cluster`` and ``map`` stopped at random points (SIGKILL, SIGINT, SIGTERM): never an
output that looks complete but is not, one line for the signals that can be caught, and a
rerun that gives what an uninterrupted run gives."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from cluster_factory import blobs, needs_mcl, write_embeddings, write_graph, write_store
from hostile import assert_clean, check_interrupted, interrupt, leftovers

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


def _stopped_then_rerun(argv, output, sig, after, command):
    code, err = interrupt(argv, sig, after, started=output)
    stopped = check_interrupted(code, err, sig, command)
    if stopped:
        assert not output.exists(), f"{output} exists after the command was stopped"
        if sig != signal.SIGKILL:
            assert not leftovers(output.parent), leftovers(output.parent)
    else:
        assert output.exists()
    assert main([*argv, "-q", "--force"]) == 0  # the rerun; it removes what a kill left
    assert_clean(output.parent)


@needs_mcl
@pytest.mark.kill_point
@pytest.mark.parametrize(("sig", "after"), [(s, a) for s in SIGNALS for a in (0.0, 0.4)])
def test_cluster_stopped_and_rerun_gives_the_same_clusters(space, tmp_path, sig, after):
    _root, graph, _emb = space
    options = ["-I", "1.4,2", "--method", "mcl,leiden", "-t", "1"]
    reference = tmp_path / "reference"
    assert main(["cluster", str(graph), "-o", str(reference), *options, "-q"]) == 0
    out = tmp_path / "out"
    _stopped_then_rerun(["cluster", str(graph), "-o", str(out), *options], out, sig, after,
                        "cluster")  # fmt: skip
    for name in ("clusters.tsv", "clusters.mcl-I1.4.tsv", "clusters.leiden-r1.tsv"):
        assert (out / name).read_text() == (reference / name).read_text(), name


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", SIGNALS)
def test_map_stopped_and_rerun_gives_the_same_map(space, tmp_path, sig):
    _root, _graph, emb = space
    options = ["-t", "1", "--n-iter", "150", "--early-iter", "50", "--dpi", "30"]
    reference = tmp_path / "reference"
    assert main(["map", str(emb), "-o", str(reference), *options, "-q"]) == 0
    out = tmp_path / "out"
    _stopped_then_rerun(["map", str(emb), "-o", str(out), *options], out, sig, 0.3, "map")
    np.testing.assert_array_equal(
        np.load(out / "coordinates.npy"), np.load(reference / "coordinates.npy")
    )
