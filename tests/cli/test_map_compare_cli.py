"""``kmervae map`` and ``kmervae compare`` end to end, in-process, and every bad input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hostile import assert_clean, assert_refused, read_only_folder, small_disk

from kmervae.cli import main
from kmervae.index import create_index, open_index
from kmervae.index.knn import knn_graph
from kmervae.io.embeddings import EmbeddingsWriter, open_embeddings
from kmervae.provenance import file_sha256
from kmervae.viz.maps import UMAP_HINT, open_map

N, DIM, BLOBS, K = 600, 16, 4, 15
FAST = ["--n-iter", "100", "--early-iter", "75", "-t", "1"]
PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF"


def _store_and_graph(tmp: Path, name: str, ids: list[str], x: np.ndarray, lengths, gc) -> Path:
    schema = {"length": "int64", "gc": "float32", "source": "string"}
    with create_index(tmp / f"{name}.store", backend="exact", dim=DIM, schema=schema) as s:
        s.add(ids, x, {"length": lengths, "gc": gc, "source": np.array(["t"] * len(ids))})
        s.save({"action": "build"})
    knn_graph(open_index(tmp / f"{name}.store"), tmp / name, K, method="exact")
    return tmp / name


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("maps")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, BLOBS, N)
    x = (rng.normal(0, 6, (BLOBS, DIM))[labels] + rng.normal(size=(N, DIM))).astype(np.float32)
    lengths = rng.integers(500, 20_000, N).astype(np.int64)
    gc = (0.3 + 0.1 * labels + rng.normal(0, 0.01, N)).astype(np.float32)
    gc[::50] = np.nan
    ids = [f"c{i}" for i in range(N)]
    with EmbeddingsWriter(tmp / "emb", DIM, columns=("lengths", "gc")) as writer:
        writer.append(x, lengths=lengths, gc=gc)
        writer.append_ids(ids)
        writer.close({"model": {"fingerprint": "f" * 64}})
    graph = _store_and_graph(tmp, "graph", ids, x, lengths, gc)
    other = _store_and_graph(tmp, "other", [f"x{i}" for i in range(N)], x, lengths, gc)
    (tmp / "clusters.tsv").write_text(
        "contig_id\tcluster\n"
        + "".join(f"{i}\tbin{lab}\n" for i, lab in zip(ids, labels, strict=True))
    )
    (tmp / "strangers.tsv").write_text("contig_id\tcluster\nz1\tk1\nz2\tk2\n")
    (tmp / "labels.tsv").write_text(
        "id\tgenus\n" + "".join(f"{i}\tG{lab}\n" for i, lab in zip(ids, labels, strict=True))
    )
    groups = np.where((labels == 0) | ((labels == 1) & (np.arange(N) % 2 == 0)), "A", "B")
    samples = "contig\tsample\tgroup\n"
    samples += "".join(
        f"{i}\t{g}{j % 3}\t{g}\n" for j, (i, g) in enumerate(zip(ids, groups, strict=True))
    )
    samples += "".join(f"ghost{j}\tC1\tC\n" for j in range(5))  # not in the map
    (tmp / "samples.tsv").write_text(samples)
    return {
        "tmp": tmp, "emb": tmp / "emb", "graph": graph, "other": other, "x": x,
        "labels": labels, "lengths": lengths, "gc": gc, "ids": ids, "groups": groups,
    }  # fmt: skip


@pytest.fixture(scope="module")
def mapped(space):
    out = space["tmp"] / "map"
    assert main(["map", str(space["emb"]), "-o", str(out), *FAST, "-q"]) == 0
    return out


def _agreement(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1)[:, :k]
    return float((labels[idx] == labels[:, None]).mean())


def _one_line_error(capsys, code: int, command: str, *needles: str) -> str:
    assert code == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith(f"kmervae {command}: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def _no_output(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


# ---------------------------------------------------------------------------- map


def test_map_writes_every_file(space, mapped):
    files = {p.name for p in mapped.iterdir()}
    assert files == {
        "manifest.json", "coordinates.npy", "ids.txt", "lengths.npy", "gc.npy", "map.tsv",
        "map.png", "kmervae.log",
    }  # fmt: skip
    manifest = json.loads((mapped / "manifest.json").read_text())
    emb = open_embeddings(space["emb"])
    assert manifest["format"] == "kmervae-map" and manifest["schema_version"] == 1
    assert manifest["n_rows"] == N and manifest["method"] == "tsne" and manifest["graph"] is None
    assert manifest["params"]["perplexity"] == 30 and manifest["params"]["iterations"] == 100
    assert manifest["params"]["seed"] == 1 and manifest["params"]["gradient"] == "fft"
    assert manifest["embeddings"]["ids_sha256"] == emb.manifest["ids_sha256"]
    assert manifest["embeddings"]["model_fingerprint"] == "f" * 64
    assert manifest["provenance"]["seed"] == 1 and manifest["peak_rss_bytes"] > 0
    assert manifest["color"]["by"] == "gc"
    assert (mapped / "map.png").read_bytes()[:8] == PNG
    assert "peak RSS" in (mapped / "kmervae.log").read_text()

    m = open_map(mapped)
    assert m.ids() == space["ids"] and m.method == "tsne"
    np.testing.assert_array_equal(m.lengths, space["lengths"])
    np.testing.assert_array_equal(m.gc, space["gc"])
    assert _agreement(np.asarray(m.coordinates), space["labels"]) > 0.9

    table = pd.read_csv(mapped / "map.tsv", sep="\t")
    assert list(table.columns) == ["contig_id", "x", "y", "length", "gc"]
    assert table["contig_id"].tolist() == space["ids"]
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), m.coordinates, rtol=1e-5)
    assert table["length"].dtype == np.int64
    np.testing.assert_array_equal(table["length"], space["lengths"])
    np.testing.assert_allclose(table["gc"], space["gc"], atol=1e-4)  # NaN where unknown
    assert table["gc"].isna().sum() == np.isnan(space["gc"]).sum() > 0


def test_map_from_the_graph_coloured_by_cluster(space, tmp_path, capsys):
    out = tmp_path / "map"
    argv = ["map", str(space["emb"]), "-o", str(out), "--graph", str(space["graph"]), *FAST]
    assert main([*argv, "--clusters", str(space["tmp"] / "clusters.tsv")]) == 0
    assert "perplexity 30 capped at 5.00" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["perplexity_used"] == pytest.approx(K / 3)
    assert manifest["params"]["neighbours"] == f"graph ({K} of k = {K})"
    assert manifest["graph"]["path"] == str(space["graph"].resolve())
    assert manifest["color"] == {
        "by": "cluster", "categories": BLOBS, "named": BLOBS,
        "source": str((space["tmp"] / "clusters.tsv").resolve()),
    }  # fmt: skip
    assert _agreement(np.asarray(open_map(out).coordinates), space["labels"]) > 0.9


def test_map_long_contigs_by_label_through_the_graph(space, tmp_path):
    out = tmp_path / "map"
    argv = ["map", str(space["emb"]), "-o", str(out), "--graph", str(space["graph"]), *FAST]
    argv += ["--min-length", "3000", "--perplexity", "4", "--labels"]
    assert main([*argv, str(space["tmp"] / "labels.tsv"), "--color", "genus", "-q"]) == 0
    keep = space["lengths"] >= 3000
    m = open_map(out)
    assert m.n_rows == keep.sum() == m.manifest["n_rows"] < N
    assert m.ids() == [i for i, k in zip(space["ids"], keep, strict=True) if k]
    np.testing.assert_array_equal(m.lengths, space["lengths"][keep])
    assert m.manifest["rows"] == {"min_length": 3000, "embeddings_rows": N}
    assert m.manifest["color"]["by"] == "genus"
    assert _agreement(np.asarray(m.coordinates), space["labels"][keep]) > 0.9


def test_map_by_umap_from_the_graph(space, tmp_path):
    pytest.importorskip("umap")
    out = tmp_path / "map"
    argv = ["map", str(space["emb"]), "-o", str(out), "--method", "umap", "-t", "1", "-q"]
    assert main([*argv, "--graph", str(space["graph"]), "--color", "length"]) == 0
    m = open_map(out)
    assert m.method == "umap" and m.manifest["params"]["n_neighbors_used"] == 15
    assert m.manifest["params"]["neighbours"] == f"graph (14 of k = {K})"
    assert np.isfinite(m.coordinates).all()
    assert _agreement(np.asarray(m.coordinates), space["labels"]) > 0.9


def test_umap_absent_is_one_line(space, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    out = tmp_path / "map"
    code = main(["map", str(space["emb"]), "-o", str(out), "--method", "umap"])
    assert _one_line_error(capsys, code, "map") == f"kmervae map: error: {UMAP_HINT}"
    _no_output(out)


MAP_ERRORS = {
    "no embeddings": (["{tmp}/absent"], "no such embeddings folder"),
    "not embeddings": (["{graph}"], "not a kmervae embedding store"),
    "other contigs": (["{emb}", "--graph", "{other}"], "a graph of other contigs"),
    "cluster, no clusters": (["{emb}", "--color", "cluster"], "--color cluster needs --clusters"),
    "label, no labels": (["{emb}", "--color", "genus"], "--color genus needs --labels"),
    "no such label": (["{emb}", "--labels", "{tmp}/labels.tsv", "--color", "phylum"], "phylum"),
    "ids unmatched": (["{emb}", "--clusters", "{tmp}/strangers.tsv"], "none of the 600 mapped"),
    "too long": (["{emb}", "--min-length", "19990"], "leaves"),
    "perplexity": (["{emb}", "--perplexity", "500"], "too big for 600 contigs"),
    "iterations": (["{emb}", "--n-iter", "0"], "argument --n-iter: must be >= 1"),
    "perplexity zero": (["{emb}", "--perplexity", "0"], "argument --perplexity: must be > 0"),
    "early iterations": (["{emb}", "--early-iter", "-1"], "argument --early-iter"),
    "dpi": (["{emb}", "--dpi", "5"], "argument --dpi: must be in [10, 2400]"),
    "threads": (["{emb}", "-t", "-2"], "argument -t/--threads"),
    "seed": (["{emb}", "--seed", "x"], "argument --seed: expected an integer"),
    "exaggeration": (["{emb}", "--exaggeration", "inf"], "must be a finite number"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(MAP_ERRORS))
def test_map_bad_input_is_one_line(space, tmp_path, capsys, case):
    args, needle = MAP_ERRORS[case]
    out = tmp_path / "map"
    names = {k: str(v) for k, v in space.items() if isinstance(v, Path)}
    argv = ["map", *[a.format(**names) for a in args], "-o", str(out)]
    assert_refused(argv, capsys, needle)
    _no_output(out)


def test_map_never_replaces_without_force(space, tmp_path, capsys):
    out = tmp_path / "map"
    out.mkdir()
    (out / "keep").write_text("x")
    code = main(["map", str(space["emb"]), "-o", str(out)])
    _one_line_error(capsys, code, "map", "already exists")
    assert (out / "keep").read_text() == "x"


def test_length_colouring_draws_a_colour_bar(tmp_path):
    from kmervae.cli.map import _render

    rng = np.random.default_rng(0)
    coords = rng.normal(size=(300, 2)).astype(np.float32)
    lengths = rng.integers(1000, 10**6, 300)
    lengths[0] = -1  # unknown: grey
    args = argparse.Namespace(method="tsne", min_length=0, dpi=60, top=20)
    record = _render(args, "length", coords, lengths, np.zeros(300), None, None, tmp_path / "m")
    assert record["by"] == "length" and record["colormap"] == "magma"
    assert 3 < record["range"][0] < record["range"][1] < 6.01
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG


# ---------------------------------------------------------------------------- compare


def _naive_composition(space, m) -> dict[str, tuple[int, int]]:
    mapped = set(m.ids())
    out: dict[str, list[int]] = {}
    for ident, label, group in zip(space["ids"], space["labels"], space["groups"], strict=True):
        if ident in mapped:
            out.setdefault(f"bin{label}", [0, 0])["AB".index(group)] += 1
    return {k: (a, b) for k, (a, b) in out.items()}


def test_compare_writes_figures_and_composition(space, mapped, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", str(mapped), "--samples", str(space["tmp"] / "samples.tsv")]
    argv += ["--a", "A", "--b", "B", "-o", str(out), "--dpi", "60"]
    assert main([*argv, "--clusters", str(space["tmp"] / "clusters.tsv")]) == 0
    assert "5 of the 605 contigs" in capsys.readouterr().err  # the ghosts, counted
    for name in ("density_difference", "overlay", "composition"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
        assert (out / f"{name}.pdf").read_bytes()[:4] == PDF
    table = pd.read_csv(out / "composition.tsv", sep="\t")
    assert list(table.columns) == ["cluster", "n_a", "n_b", "fraction_a", "fraction_b", "share_a"]
    naive = _naive_composition(space, open_map(mapped))
    got = {r.cluster: (r.n_a, r.n_b) for r in table.itertuples()}
    assert got == naive
    n_a = int((space["groups"] == "A").sum())
    np.testing.assert_allclose(table["fraction_a"], table["n_a"] / n_a, rtol=1e-5)
    share = table["n_a"] / (table["n_a"] + table["n_b"])
    np.testing.assert_allclose(table["share_a"], share, rtol=1e-5)
    assert (np.diff(table["n_a"] + table["n_b"]) <= 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"]["sha256"] == file_sha256(space["tmp"] / "samples.tsv")
    assert manifest["samples"]["contigs_not_in_map"] == 5
    assert manifest["groups"]["a"]["contigs_mapped"] == n_a
    assert manifest["groups"]["b"]["samples"] == ["B0", "B1", "B2"]
    assert manifest["clusters"]["clusters_with_members"] == BLOBS
    assert manifest["provenance"]["command"][1] == "compare"


def test_compare_png_only_without_clusters(space, mapped, tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", str(mapped), "--samples", str(space["tmp"] / "samples.tsv"), "-q"]
    assert main([*argv, "--a", "B", "--b", "A", "-o", str(out), "--format", "png"]) == 0
    assert {p.name for p in out.iterdir()} == {
        "density_difference.png", "overlay.png", "manifest.json", "kmervae.log",
    }  # fmt: skip


COMPARE_ERRORS = {
    "not a map": (["{emb}", "--samples", "{samples}"], "not a kmervae map"),
    "no samples": (["{map}", "--samples", "{tmp}/absent.tsv"], "no such samples file"),
    "empty samples": (["{map}", "--samples", "{empty}"], "empty.tsv: empty"),
    "wrong columns": (["{map}", "--samples", "{columns}"], "columns.tsv: line 1: expected"),
    "short line": (["{map}", "--samples", "{short}"], "short.tsv: line 3: expected 3"),
    "no id in map": (["{map}", "--samples", "{strangers}"], "none of its 2 contigs is in the map"),
    "no such group": (["{map}", "--samples", "{samples}", "--b", "soil"], "(groups: A, B, C)"),
    "group off map": (["{map}", "--samples", "{samples}", "--b", "C"], "group 'C': none of its 5"),
    "same groups": (["{map}", "--samples", "{samples}", "--b", "A"], "--a and --b are both 'A'"),
    "format": (["{map}", "--samples", "{samples}", "--format", "svg"], "png and/or pdf"),
    "bins": (["{map}", "--samples", "{samples}", "--bins", "1"], "--bins: must be in [2, 10000]"),
    "top": (["{map}", "--samples", "{samples}", "--top", "0"], "argument --top: must be >= 1"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(COMPARE_ERRORS))
def test_compare_bad_input_is_one_line(space, mapped, tmp_path, capsys, case):
    texts = {
        "empty": "",
        "columns": "contig\tsample\tenvironment\nc1\ts\tA\n",
        "short": "contig\tsample\tgroup\nc1\ts1\tA\nc2\ts1\n",
        "strangers": "contig\tsample\tgroup\nz1\ts1\tA\nz2\ts2\tB\n",
    }
    names = {k: str(v) for k, v in space.items() if isinstance(v, Path)}
    names.update(map=str(mapped), samples=str(space["tmp"] / "samples.tsv"))
    for name, text in texts.items():
        (tmp_path / f"{name}.tsv").write_text(text)
        names[name] = str(tmp_path / f"{name}.tsv")
    args, needle = COMPARE_ERRORS[case]
    out = tmp_path / "cmp"
    argv = ["compare", *[a.format(**names) for a in args], "-o", str(out)]
    if "--b" not in args:
        argv += ["--b", "B"]
    assert_refused([*argv, "--a", "A"], capsys, needle)
    _no_output(out)


def test_compare_never_replaces_without_force(space, mapped, tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    argv = ["compare", str(mapped), "--samples", str(space["tmp"] / "samples.tsv")]
    code = main([*argv, "--a", "A", "--b", "B", "-o", str(out)])
    _one_line_error(capsys, code, "compare", "already exists")
    assert list(out.iterdir()) == []


def test_hdbscan_clusters_a_map(space, mapped, tmp_path):
    # the map carries the contigs' lengths and GC into the cluster statistics
    from sklearn.metrics import adjusted_rand_score

    out = tmp_path / "hdb"
    assert main(["cluster", str(mapped), "-o", str(out), "--method", "hdbscan", "-q"]) == 0
    frame = pd.read_csv(out / "clusters.tsv", sep="\t")
    rows = frame["contig_id"].str[1:].astype(int).to_numpy()
    assert len(rows) > 0.8 * N
    assert adjusted_rand_score(space["labels"][rows], frame["cluster"]) > 0.9
    stats = pd.read_csv(out / "clusters.stats.tsv", sep="\t")
    assert stats["total_bp"].sum() == space["lengths"][rows].sum()
    assert (stats["gc_spread"] < 9).all()  # groups sit 10 pp apart
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["kind"] == "map"


# ---------------------------------------------------------------------------- hostile disks


@pytest.mark.bad_input
@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_map_and_compare_on_a_full_or_read_only_disk(space, mapped, tmp_path, capsys, disk):
    with small_disk(tmp_path, "48k") if disk == "full" else read_only_folder(tmp_path) as d:
        needle = "No space left" if disk == "full" else "is not writable"
        assert_refused(["map", space["emb"], "-o", d / "map", *FAST], capsys, needle, str(d))
        assert_clean(d, d / "map")
        argv = ["compare", mapped, "--samples", space["tmp"] / "samples.tsv", "--a", "A",
                "--b", "B", "-o", d / "cmp", "--dpi", "300"]  # fmt: skip
        assert_refused(argv, capsys, needle, str(d))
        assert_clean(d, d / "cmp")
