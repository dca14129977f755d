"""``kmervae index build|add|info``, ``kmervae search`` and ``kmervae knn`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_fasta
from embed_factory import SMALL, random_profiles, write_model, write_profiles

from kmervae.cli import main
from kmervae.index import open_index
from kmervae.index.exact import brute_force_topk
from kmervae.index.graph import open_knn_graph
from kmervae.io.embeddings import open_embeddings
from kmervae.model.config import VAEConfig

N = 80


def _embed(tmp: Path, model: Path, n: int, name: str, seed: int, ids=None) -> Path:
    ds = write_profiles(tmp / f"{name}.ds", random_profiles(n, SMALL.layout, seed), ids=ids)
    out = tmp / name
    assert main(["embed", str(model), str(ds), "-o", str(out), "-q", "-t", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("space")
    model, _ = write_model(tmp / "model")
    emb = _embed(tmp, model, N, "emb", 1)
    more = _embed(tmp, model, 10, "more", 2, ids=[f"new{i}" for i in range(10)])
    store = tmp / "store"
    columns = tmp / "columns.tsv"
    columns.write_text("id\ttaxon\tdepth\n" + "".join(f"c{i}\tt{i % 4}\t{i}.5\n" for i in range(N)))
    argv = ["index", "build", str(emb), "-o", str(store), "--columns", str(columns), "-q"]
    assert main(argv) == 0
    return {"tmp": tmp, "model": model, "emb": emb, "more": more, "store": store}


def _tsv(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines[0].split("\t") == ["query", "rank", "neighbour", "distance", "length"]
    return [line.split("\t") for line in lines[1:]]


def test_build_and_info(space, capsys):
    store = open_index(space["store"])
    emb = open_embeddings(space["emb"])
    assert len(store) == N and store.dim == SMALL.latent
    assert store.model_fingerprint == emb.model_fingerprint != ""
    assert store.schema == {
        "length": "int64",
        "gc": "float32",
        "source": "string",
        "source_path": "string",
        "taxon": "string",
        "depth": "float64",
    }
    names = ["length", "gc", "source", "source_path", "taxon", "depth", "embedding"]
    got = store.take(np.array([5]), names)
    assert got["length"][0] == 1035 and got["source"][0] == "b" and got["taxon"][0] == "t1"
    assert got["source_path"][0] == "b"  # the dataset recorded a name only
    np.testing.assert_allclose(got["gc"][0], 0.005)
    np.testing.assert_array_equal(got["embedding"][0], emb.mu[5])
    manifest = json.loads((space["store"] / "manifest.json").read_text())
    entry = manifest["history"][0]
    assert entry["provenance"]["command"][:3] == ["kmervae", "index", "build"]
    assert entry["inputs"][0]["ids_sha256"] == emb.manifest["ids_sha256"]
    assert len(entry["columns"]["sha256"]) == 64
    assert "command: kmervae index build" in (space["store"] / "kmervae.log").read_text()
    capsys.readouterr()
    assert main(["index", "info", str(space["store"])]) == 0
    out = capsys.readouterr().out
    assert (
        f"contigs\t{N}" in out and emb.model_fingerprint in out and "column\ttaxon\tstring" in out
    )
    assert "batch index\tflat" in out  # below --ann-min-rows: an exact FAISS index
    assert main(["index", "info", str(space["store"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_rows"] == N


def test_search_by_ids_embeddings_and_fasta(space, tmp_path, capsys):
    store = space["store"]
    emb = open_embeddings(space["emb"])
    mu = np.asarray(emb.mu)
    capsys.readouterr()
    assert main(["search", str(store), "--ids", "c3", "c7", "-k", "4"]) == 0
    rows = _tsv(capsys.readouterr().out)
    assert len(rows) == 8 and rows[0][:2] == ["c3", "1"]
    want = brute_force_topk(mu[[3]], [(np.arange(N), mu)], 5)
    expected = [f"c{r}" for r in want.rows[0] if r != 3][:4]
    assert [r[2] for r in rows[:4]] == expected
    assert all(r[2] != r[0] for r in rows)
    assert int(rows[0][4]) == 1000 + 7 * int(rows[0][2][1:])
    # embeddings from a .npy, filtered, written to a file
    np.save(tmp_path / "q.npy", mu[:2])
    out = tmp_path / "hits.tsv"
    argv = ["search", str(store), "--embeddings", str(tmp_path / "q.npy"), "-k", "3"]
    assert main([*argv, "--where", "length >= 1300 and taxon != 't0'", "-o", str(out)]) == 0
    hits = _tsv(out.read_text())
    assert out.read_text().startswith("query\trank\t")
    sidecar = json.loads((tmp_path / "hits.tsv.json").read_text())
    assert sidecar["provenance"]["command"][:2] == ["kmervae", "search"]
    assert sidecar["n_rows"] == len(hits) and sidecar["store"]["model_fingerprint"]
    assert {h[0] for h in hits} == {"q1", "q2"}
    assert all(int(h[4]) >= 1300 and int(h[2][1:]) % 4 != 0 for h in hits)
    # new sequences: profiled and embedded with the store's model
    fasta = tmp_path / "new.fa"
    records = random_fasta(fasta, n=3, seed=5, min_len=500)
    model = str(space["model"])
    assert main(["search", str(store), "--fasta", str(fasta), "--model", model, "-k", "2"]) == 0
    hits = _tsv(capsys.readouterr().out)
    assert [h[0] for h in hits] == [r for r in records for _ in range(2)]


def test_search_errors(space, tmp_path, capsys):
    store = str(space["store"])
    capsys.readouterr()
    assert main(["search", store, "--ids", "nope", "-q"]) == 1
    assert "id 'nope' is not in" in capsys.readouterr().err
    assert main(["search", store, "--ids", "c1", "-k", str(N)]) == 1
    assert "larger than the store" in capsys.readouterr().err
    assert main(["search", store, "--ids", "c1", "--where", "size > 3"]) == 1
    err = capsys.readouterr().err
    assert "unknown column 'size'" in err and "length" in err and len(err.splitlines()) == 1
    np.save(tmp_path / "bad.npy", np.zeros((2, SMALL.latent + 1), np.float32))
    assert main(["search", store, "--embeddings", str(tmp_path / "bad.npy")]) == 1
    assert "dimension mismatch" in capsys.readouterr().err
    other, _ = write_model(tmp_path / "other", seed=3)
    fasta = tmp_path / "x.fa"
    random_fasta(fasta, n=1, seed=1)
    assert main(["search", store, "--fasta", str(fasta), "--model", str(other)]) == 1
    assert "is not the model of the store" in capsys.readouterr().err
    assert main(["search", store, "--ids", "c1", "-o", str(tmp_path / "o.tsv"), "-k", "999"]) == 1
    assert not (tmp_path / "o.tsv").exists()


def test_add_and_its_refusals(space, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["index", "build", str(space["emb"]), "-o", str(store), "-q"]) == 0
    before = (store / "manifest.json").read_text()
    capsys.readouterr()
    # duplicate ids (the same embeddings again)
    assert main(["index", "add", str(store), str(space["emb"])]) == 1
    assert "duplicate id 'c0': it is already in the store" in capsys.readouterr().err
    # another model
    other, _ = write_model(tmp_path / "other", seed=7)
    foreign = _embed(tmp_path, other, 5, "foreign", 3, ids=[f"f{i}" for i in range(5)])
    assert main(["index", "add", str(store), str(foreign)]) == 1
    assert "cannot join the store" in capsys.readouterr().err
    # another dimension (and model)
    wide = VAEConfig(ks=(4, 3, 2, 1), hidden=(32, 16), latent=4)
    narrow, _ = write_model(tmp_path / "narrow", wide)
    small = _embed(tmp_path, narrow, 5, "narrow_emb", 3, ids=[f"n{i}" for i in range(5)])
    assert main(["index", "add", str(store), str(small)]) == 1
    assert "cannot join" in capsys.readouterr().err
    # embeddings without ids
    np.save(tmp_path / "bare.npy", np.zeros((3, SMALL.latent), np.float32))
    assert main(["index", "add", str(store), str(tmp_path / "bare.npy")]) == 1
    assert "embeddings without ids" in capsys.readouterr().err
    assert main(["index", "build", str(tmp_path / "bare.npy"), "-o", str(tmp_path / "s2")]) == 1
    assert "embeddings without ids" in capsys.readouterr().err and not (tmp_path / "s2").exists()
    assert (store / "manifest.json").read_text() == before
    assert len(open_index(store)) == N
    # a good add
    assert main(["index", "add", str(store), str(space["more"]), "-q"]) == 0
    opened = open_index(store)
    assert len(opened) == N + 10
    assert [h["action"] for h in opened.manifest["history"]] == ["build", "add"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dimension_mismatch_with_the_store(space, tmp_path, capsys):
    wide = VAEConfig(ks=(4, 3, 2, 1), hidden=(32, 16), latent=4)
    narrow, _ = write_model(tmp_path / "narrow", wide)
    small = _embed(tmp_path, narrow, 5, "narrow_emb", 3, ids=[f"n{i}" for i in range(5)])
    store = tmp_path / "store"
    assert main(["index", "build", str(small), "-o", str(store), "--backend", "exact", "-q"]) == 0
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["model"]["fingerprint"] = open_embeddings(space["emb"]).model_fingerprint
    (store / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["index", "add", str(store), str(space["emb"])]) == 1
    assert "dimension mismatch" in capsys.readouterr().err


def test_knn_graph_and_tsv(space, tmp_path, capsys):
    store = str(space["store"])
    graph_dir = tmp_path / "graph"
    tsv = tmp_path / "edges.tsv"
    argv = ["knn", store, "-k", "5", "-o", str(graph_dir), "--tsv", str(tsv), "--block", "16"]
    assert main([*argv, "--max-in-degree", "8", "-q"]) == 0
    graph = open_knn_graph(graph_dir)
    assert graph.indices.shape == (N, 5) and graph.indices.dtype == np.int32
    assert graph.manifest["store"]["model_fingerprint"] == open_index(store).model_fingerprint
    assert graph.manifest["provenance"]["command"][:2] == ["kmervae", "knn"]
    indeg = np.bincount(graph.indices[graph.indices >= 0], minlength=N)
    assert indeg.max() <= 8
    mu = np.asarray(open_embeddings(space["emb"]).mu)
    exact = brute_force_topk(mu, [(np.arange(N), mu)], 6)
    kept = graph.indices >= 0
    for i in range(N):
        assert i not in graph.indices[i]
        assert set(graph.indices[i][kept[i]]) <= set(exact.rows[i][1:])
    lines = tsv.read_text().splitlines()
    assert lines[0] == "source\ttarget\trank\tdistance" and len(lines) - 1 == graph.n_edges()
    assert graph.to_csr().nnz == graph.n_edges()
    # a distance threshold
    cut = float(np.median(graph.distances[kept]))
    argv = ["knn", store, "-k", "5", "-o", str(tmp_path / "g2"), "--max-distance", str(cut)]
    assert main([*argv, "-q"]) == 0
    g2 = open_knn_graph(tmp_path / "g2")
    assert (g2.distances[g2.indices >= 0] <= cut).all() and (g2.indices < 0).any()
    # k too large, nothing written
    capsys.readouterr()
    assert main(["knn", store, "-k", str(N), "-o", str(tmp_path / "g3")]) == 1
    assert "larger than the store" in capsys.readouterr().err
    assert not (tmp_path / "g3").exists()


def test_devices_and_closed_pipes_as_outputs(space, tmp_path, capsys):
    store = str(space["store"])
    # /dev/null takes a TSV as it is written: no --force, nothing built beside it
    assert main(["search", store, "--ids", "c3", "-k", "4", "-o", os.devnull, "-q"]) == 0
    argv = ["knn", store, "-k", "5", "-o", str(tmp_path / "g"), "--tsv", os.devnull, "-q"]
    assert main(argv) == 0
    assert open_knn_graph(tmp_path / "g").n_rows == N
    assert Path(os.devnull).is_char_device()
    # a folder cannot be written there, --force or not
    capsys.readouterr()
    assert main(["knn", store, "-k", "5", "-o", os.devnull, "--force", "-q"]) == 1
    err = capsys.readouterr().err
    assert "is a device or a pipe" in err and len(err.splitlines()) == 1
    # `kmervae search ... | head`: a reader that went away ends the command quietly, 141
    read_end, write_end = os.pipe()
    os.close(read_end)
    ids = [f"c{i}" for i in range(N)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmervae", "search", store, "--ids", *ids, "-k", "10", "-q"],
        stdout=write_end,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    _, stderr = proc.communicate(timeout=300)
    assert stderr == b"" and proc.returncode == 141
