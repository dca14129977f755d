"""``index build|add``, ``search`` and ``knn`` against hostile inputs, full disks and kills.

Every bad input or option ends with one error line that names the culprit, exit 1 (2 for an
option out of range), no traceback and nothing under a final output name. A build or a knn
stopped by SIGKILL or SIGINT leaves nothing that looks complete, and the rerun gives what an
uninterrupted run gives; the same seed gives the same graph.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from embed_factory import SMALL, random_profiles, write_model, write_profiles
from hostile import (
    assert_clean,
    assert_refused,
    check_interrupted,
    interrupt,
    leftovers,
    read_only_folder,
    small_disk,
    stopped_then_rerun,
)

from kmervae.cli import main
from kmervae.index import open_index
from kmervae.index.graph import open_knn_graph

N = 300
DIM = SMALL.latent


def _embed(root: Path, model: Path, name: str, prefix: str, n: int, seed: int) -> Path:
    ids = [f"{prefix}{i}" for i in range(n)]
    ds = write_profiles(root / f"{name}.ds", random_profiles(n, SMALL.layout, seed), ids=ids)
    out = root / name
    assert main(["embed", str(model), str(ds), "-o", str(out), "-q", "-t", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    model, _ = write_model(root / "model")
    other, _ = write_model(root / "other", seed=3)
    paths = {
        "root": root,
        "model": model,
        "emb": _embed(root, model, "emb", "c", N, 1),
        "more": _embed(root, model, "more", "m", 10, 2),
        "foreign": _embed(root, other, "foreign", "f", 5, 3),
        "store": root / "store",
        "graph": root / "graph",
    }
    assert main(["index", "build", str(paths["emb"]), "-o", str(paths["store"]), "-q"]) == 0
    argv = ["knn", str(paths["store"]), "-k", "5", "-o", str(paths["graph"]), "--block", "8"]
    assert main([*argv, "-q"]) == 0
    return paths


def _store_rows(path: Path) -> dict[str, np.ndarray]:
    store = open_index(path)
    return store.take(np.arange(len(store)), ["id", "embedding", "length", "gc", "source"])


def _assert_same_store(path: Path, reference: Path) -> None:
    got, want = _store_rows(path), _store_rows(reference)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _assert_same_graph(path: Path, reference: Path) -> None:
    got, want = open_knn_graph(path), open_knn_graph(reference)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.distances, want.distances)
    assert got.ids() == want.ids()


def _copy_embeddings(space: dict[str, Path], tmp: Path, name: str = "bad") -> Path:
    out = tmp / name
    shutil.copytree(space["emb"], out)
    return out


def _rewrite_mu(emb: Path, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    mu = np.load(emb / "embeddings.npy")
    np.save(emb / "embeddings.npy", change(mu))
    return emb


def _with_row(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(mu: np.ndarray) -> np.ndarray:
        mu = mu.copy()
        mu[7, 2] = value
        return mu

    return change


def _rewrite_ids(emb: Path, change: Callable[[list[str]], list[str]]) -> Path:
    ids = (emb / "ids.txt").read_text().splitlines()
    (emb / "ids.txt").write_text("".join(f"{i}\n" for i in change(ids)))
    return emb


def _no_rows(emb: Path) -> Path:
    manifest = json.loads((emb / "manifest.json").read_text())
    manifest["n_rows"] = 0
    (emb / "manifest.json").write_text(json.dumps(manifest))
    np.save(emb / "embeddings.npy", np.zeros((0, DIM), np.float32))
    for name, dtype in (("lengths", np.int64), ("gc", np.float32), ("sources", np.int32)):
        np.save(emb / f"{name}.npy", np.zeros(0, dtype))
    (emb / "ids.txt").write_text("")
    return emb


def _garbage(emb: Path) -> Path:
    (emb / "embeddings.npy").write_bytes(b"not a numpy file")
    return emb


# -- index build / add --------------------------------------------------------------------
# each case: (the embeddings to give, made from a copy of a good store; what the line names)
BAD_EMBEDDINGS: dict[str, tuple[Callable[[dict[str, Path], Path], Path], tuple[str, ...]]] = {
    "missing": (lambda s, t: t / "nope", ("nope", "no such embedding store")),
    "empty-folder": (
        lambda s, t: (t / "empty").mkdir() or t / "empty",
        ("empty", "not an embedding store"),
    ),
    "a-text-file": (
        lambda s, t: (t / "x.txt").write_text("hello\n") and t / "x.txt",
        ("x.txt", "not an embedding store"),
    ),
    "bare-npy": (
        lambda s, t: np.save(t / "x.npy", np.zeros((3, DIM), np.float32)) or t / "x.npy",
        ("x.npy", "without ids"),
    ),
    "unreadable": (lambda s, t: _garbage(_copy_embeddings(s, t)), ("bad", "not a readable")),
    "float64": (
        lambda s, t: _rewrite_mu(_copy_embeddings(s, t), lambda m: m.astype(np.float64)),
        ("bad", "embeddings.npy", "float64"),
    ),
    "extra-column": (
        lambda s, t: _rewrite_mu(_copy_embeddings(s, t), lambda m: np.c_[m, m[:, :1]]),
        ("bad", "embeddings.npy", f"(300, {DIM + 1})"),
    ),
    "ids-short": (
        lambda s, t: _rewrite_ids(_copy_embeddings(s, t), lambda ids: ids[:-1]),
        ("ids.txt", f"{N - 1} ids for {N}"),
    ),
    "nan-row": (
        lambda s, t: _rewrite_mu(_copy_embeddings(s, t), _with_row(np.nan)),
        ("bad", "'c7'", "row 8", "not finite"),
    ),
    "inf-row": (
        lambda s, t: _rewrite_mu(_copy_embeddings(s, t), _with_row(np.inf)),
        ("bad", "'c7'", "row 8", "not finite"),
    ),
    "duplicate-ids": (
        lambda s, t: _rewrite_ids(_copy_embeddings(s, t), lambda ids: [*ids[:5], ids[3], *ids[6:]]),
        ("bad", "duplicate id 'c3'"),
    ),
    "no-rows": (lambda s, t: _no_rows(_copy_embeddings(s, t)), ("bad", "without rows")),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(BAD_EMBEDDINGS))
def test_index_build_refuses_bad_embeddings(space, tmp_path, capsys, case):
    make, needles = BAD_EMBEDDINGS[case]
    emb = make(space, tmp_path)
    out = tmp_path / "store"
    assert_refused(["index", "build", emb, "-o", out, "-q"], capsys, *needles, code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
@pytest.mark.parametrize("case", ["nan-row", "duplicate-ids", "float64", "no-rows"])
def test_index_add_refuses_bad_embeddings_and_keeps_the_store(space, tmp_path, capsys, case):
    store = tmp_path / "store"
    shutil.copytree(space["store"], store)
    before = (store / "manifest.json").read_text()
    make, needles = BAD_EMBEDDINGS[case]
    emb = make(space, tmp_path)
    if case in ("nan-row", "duplicate-ids"):  # ids new to the store: the row check is reached
        _rewrite_ids(emb, lambda ids: [f"new-{i}" for i in ids])
        needles = tuple(n.replace("'c", "'new-c") for n in needles)
    assert_refused(["index", "add", store, emb, "-q"], capsys, *needles, code=1)
    assert (store / "manifest.json").read_text() == before
    _assert_same_store(store, space["store"])
    assert_clean(tmp_path)


@pytest.mark.bad_input
def test_index_add_refuses_ids_already_in_the_store_naming_the_file(space, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(space["store"], store)
    assert_refused(
        ["index", "add", store, space["emb"]], capsys, str(space["emb"]), "duplicate id 'c0'"
    )
    _assert_same_store(store, space["store"])


@pytest.mark.bad_input
@pytest.mark.parametrize("action", ["build", "add"])
def test_embeddings_of_another_model_are_refused(space, tmp_path, capsys, action):
    if action == "build":
        argv = ["index", "build", space["emb"], space["foreign"], "-o", tmp_path / "s"]
    else:
        shutil.copytree(space["store"], tmp_path / "s")
        argv = ["index", "add", tmp_path / "s", space["foreign"]]
    assert_refused(argv, capsys, str(space["foreign"]), "cannot join", code=1)
    assert_clean(tmp_path)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("options", "needles", "code"),
    [
        (["--nlist", "0"], ("--nlist", ">= 1"), 2),
        (["--sub-vectors", "-2"], ("--sub-vectors", ">= 1"), 2),
        (["--nprobe", "0"], ("--nprobe",), 2),
        (["--refine-factor", "0"], ("--refine-factor",), 2),
        (["--ann-min-rows", "-1"], ("--ann-min-rows",), 2),
        (["--nlist", "x"], ("--nlist", "integer"), 2),
        (["--nlist", "500", "--ann-min-rows", "10"], ("num_partitions 500", f"{N} rows"), 1),
        (["--sub-vectors", "3", "--vector-index", "ivf-pq"], ("num_sub_vectors 3", "divide"), 1),
    ],
    ids=["nlist-0", "sub-vectors", "nprobe", "refine", "ann-min", "text", "lists>rows",
         "sub-vectors-divide"],
)  # fmt: skip
def test_index_build_option_ranges(space, tmp_path, capsys, options, needles, code):
    out = tmp_path / "s"
    argv = ["index", "build", space["emb"], "-o", out, *options, "-q"]
    assert_refused(argv, capsys, *needles, code=code)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_index_build_refuses_an_existing_store_before_reading_anything(space, tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "keep").write_text("mine")
    # the input does not even exist: the output is checked first
    assert_refused(["index", "build", tmp_path / "nope", "-o", out], capsys, "already exists")
    assert (out / "keep").read_text() == "mine"


@pytest.mark.bad_input
def test_index_build_into_a_read_only_or_missing_folder(space, tmp_path, capsys):
    missing = tmp_path / "no" / "s"
    assert_refused(["index", "build", space["emb"], "-o", missing], capsys, "does not exist")
    with read_only_folder(tmp_path) as folder:
        argv = ["index", "build", space["emb"], "-o", folder / "s"]
        assert_refused(argv, capsys, str(folder), "not writable")


@pytest.mark.bad_input
@pytest.mark.parametrize("backend", ["lance", "faiss", "exact"])
def test_index_build_on_a_full_disk(space, tmp_path, capsys, backend):
    with small_disk(tmp_path, "16k") as disk:
        out = disk / "s"
        argv = ["index", "build", space["emb"], "-o", out, "--backend", backend, "-q"]
        assert_refused(argv, capsys, str(out), "no space left on device", code=1)
        assert_clean(disk, out)


@pytest.mark.bad_input
@pytest.mark.parametrize("backend", ["lance", "faiss", "exact"])
def test_index_add_on_a_full_disk_keeps_the_store(space, tmp_path, capsys, backend):
    with small_disk(tmp_path, "1m") as disk:
        store = disk / "s"
        argv = ["index", "build", space["emb"], "-o", store, "--backend", backend, "-q"]
        assert main([str(a) for a in argv]) == 0
        before = (store / "manifest.json").read_text()
        filler = disk / "filler"
        free = shutil.disk_usage(disk).free
        filler.write_bytes(b"\0" * max(0, free - 2048))
        assert_refused(["index", "add", store, space["more"], "-q"], capsys, str(store), "no space")
        assert (store / "manifest.json").read_text() == before
        _assert_same_store(store, space["store"])
        filler.unlink()
        assert main(["index", "add", str(store), str(space["more"]), "-q"]) == 0
        assert len(open_index(store)) == N + 10
        assert_clean(disk)


# -- search ------------------------------------------------------------------------------
def _npy(tmp: Path, x: np.ndarray, name: str = "q.npy") -> Path:
    np.save(tmp / name, x)
    return tmp / name


def _queries(value: float | None = None, rows: int = 3) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(rows, DIM)).astype(np.float32)
    if value is not None:
        x[1, 4] = value
    return x


BAD_QUERIES: dict[str, tuple[Callable[[dict[str, Path], Path], Path], tuple[str, ...]]] = {
    "nan-row": (lambda s, t: _npy(t, _queries(np.nan)), ("q.npy", "'q2'", "row 2", "not finite")),
    "inf-row": (lambda s, t: _npy(t, _queries(-np.inf)), ("q.npy", "'q2'", "row 2", "finite")),
    "no-rows": (lambda s, t: _npy(t, np.zeros((0, DIM), np.float32)), ("q.npy", "no queries")),
    "empty-file": (
        lambda s, t: (t / "q.npy").write_bytes(b"") or t / "q.npy",
        ("q.npy", "not a readable"),
    ),
    "integers": (lambda s, t: _npy(t, np.zeros((2, DIM), np.int32)), ("q.npy", "float")),
    "columns": (lambda s, t: _npy(t, _queries()[:, :-1]), ("q.npy", "dimension mismatch")),
    "missing": (lambda s, t: t / "nope.npy", ("nope.npy", "no such")),
    "folder": (
        lambda s, t: (t / "d").mkdir() or t / "d",
        ("d", "not an embedding store"),
    ),
    "nan-in-a-store": (
        lambda s, t: _rewrite_mu(_copy_embeddings(s, t), _with_row(np.nan)),
        ("bad", "'c7'", "row 8"),
    ),
    "another-model": (lambda s, t: s["foreign"], ("foreign", "the store", "different spaces")),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(BAD_QUERIES))
def test_search_refuses_bad_query_embeddings(space, tmp_path, capsys, case):
    make, needles = BAD_QUERIES[case]
    queries = make(space, tmp_path)
    out = tmp_path / "hits.tsv"
    argv = ["search", space["store"], "--embeddings", queries, "-k", "3", "-o", out]
    assert_refused(argv, capsys, *needles, code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_search_names_both_models(space, tmp_path, capsys):
    from kmervae.io.embeddings import open_embeddings

    ours = open_index(space["store"]).model_fingerprint[:12]
    theirs = open_embeddings(space["foreign"]).model_fingerprint[:12]
    argv = ["search", space["store"], "--embeddings", space["foreign"]]
    assert_refused(argv, capsys, ours, theirs, str(space["store"]))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("record", "needles"),
    [
        ("", ("'empty'", "record 2", "0 bp", "no 4-mer")),
        ("NNNNNNNNNNNN", ("'empty'", "record 2", "12 bp", "no 4-mer")),
        ("ACG", ("'empty'", "record 2", "3 bp", "no 4-mer")),
    ],
    ids=["no-sequence", "only-N", "shorter-than-k"],
)
def test_search_refuses_fasta_records_without_kmers(space, tmp_path, capsys, record, needles):
    fasta = tmp_path / "q.fa"
    fasta.write_text(f">good\n{'ACGTTGCAAGCTTAGC' * 20}\n>empty\n{record}\n")
    argv = ["search", space["store"], "--fasta", fasta, "--model", space["model"], "-k", "2"]
    assert_refused(argv, capsys, "q.fa", *needles, code=1)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("options", "needles", "code"),
    [
        (["-k", "0"], ("-k", ">= 1"), 2),
        (["-k", "-1"], ("-k",), 2),
        (["-k", "1000000"], ("k = 1000000", f"{N} contigs"), 1),
        (["-t", "-1"], ("--threads",), 2),
        (["-k", "2.5"], ("-k", "integer"), 2),
    ],
    ids=["k-0", "k-negative", "k-huge", "threads", "k-fraction"],
)
def test_search_option_ranges(space, tmp_path, capsys, options, needles, code):
    out = tmp_path / "hits.tsv"
    argv = ["search", space["store"], "--ids", "c1", "-o", out, *options]
    assert_refused(argv, capsys, *needles, code=code)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_search_refuses_an_existing_output_before_loading_the_model(space, tmp_path, capsys):
    out = tmp_path / "hits.tsv"
    out.write_text("mine\n")
    fasta = tmp_path / "q.fa"
    fasta.write_text(">a\nACGTACGTAGGT\n")
    argv = ["search", space["store"], "--fasta", fasta, "--model", tmp_path / "no-model", "-o", out]
    assert_refused(argv, capsys, "hits.tsv", "already exists")
    assert out.read_text() == "mine\n"
    argv = ["search", space["store"], "--fasta", fasta, "--model", tmp_path / "no-model"]
    assert_refused(argv, capsys, "no-model", "no such model")


@pytest.mark.bad_input
def test_search_output_on_a_full_disk_or_read_only_folder(space, tmp_path, capsys):
    ids = [f"c{i}" for i in range(40)]
    with small_disk(tmp_path, "4k") as disk:
        out = disk / "hits.tsv"
        argv = ["search", space["store"], "--ids", *ids, "-k", "50", "-o", out]
        assert_refused(argv, capsys, str(out), "no space left on device", code=1)
        assert_clean(disk, out)
    with read_only_folder(tmp_path) as folder:
        argv = ["search", space["store"], "--ids", "c1", "-o", folder / "hits.tsv"]
        assert_refused(argv, capsys, "not writable")


def test_search_without_a_filter_does_not_blame_one(space, tmp_path, capsys):
    # every query finds k neighbours: no warning, and the good rows of a file still search
    capsys.readouterr()
    q = _npy(tmp_path, _queries())
    assert main(["search", str(space["store"]), "--embeddings", str(q), "-k", "4"]) == 0
    captured = capsys.readouterr()
    assert "filter" not in captured.err
    assert (
        len([x for x in captured.out.splitlines() if x.startswith("q") and "rank" not in x]) == 12
    )


# -- knn ---------------------------------------------------------------------------------
@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("options", "needles", "code"),
    [
        (["-k", "0"], ("-k", ">= 1"), 2),
        (["-k", "-1"], ("-k",), 2),
        (["-k", "99999999999"], ("k = 99999999999", f"{N} contigs"), 1),
        (["-k", str(N)], (f"k = {N}", "larger than the store"), 1),
        (["-t", "-1"], ("--threads", "[0, 4096]"), 2),
        (["--nprobe", "0"], ("--nprobe",), 2),
        (["--nlist", "0"], ("--nlist",), 2),
        (["--nlist", "1000", "--method", "ivf-flat"], ("nlist 1000", f"{N} contigs"), 1),
        (["--block", "0"], ("--block",), 2),
        (["--max-distance", "-1"], ("--max-distance",), 2),
        (["--max-distance", "nan"], ("--max-distance", "finite"), 2),
        (["--max-in-degree", "0"], ("--max-in-degree",), 2),
        (["--seed", "-1"], ("--seed",), 2),
        (["--seed", str(2**32)], ("--seed",), 2),
    ],
    ids=["k-0", "k-negative", "k-huge", "k-store", "threads", "nprobe", "nlist", "nlist>rows",
         "block", "max-distance", "max-distance-nan", "max-in-degree", "seed", "seed-big"],
)  # fmt: skip
def test_knn_option_ranges(space, tmp_path, capsys, options, needles, code):
    out = tmp_path / "g"
    argv = ["knn", space["store"], "-o", out, *options]
    assert_refused(argv, capsys, *needles, code=code)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_knn_inputs_and_outputs_checked_first(space, tmp_path, capsys):
    out = tmp_path / "g"
    out.mkdir()
    # an existing graph is refused before the store is even opened
    assert_refused(["knn", tmp_path / "no-store", "-o", out], capsys, "already exists")
    tsv = tmp_path / "e.tsv"
    tsv.write_text("mine")
    argv = ["knn", tmp_path / "no-store", "-o", tmp_path / "g2", "--tsv", tsv]
    assert_refused(argv, capsys, "e.tsv", "already exists")
    assert_refused(["knn", tmp_path / "no-store", "-o", tmp_path / "g2"], capsys, "no-store")
    assert_refused(["knn", space["emb"], "-o", tmp_path / "g2"], capsys, "not a kmervae index")
    assert_refused(["knn", space["store"], "-o", tmp_path / "no" / "g"], capsys, "does not exist")
    assert_clean(tmp_path, tmp_path / "g2")


@pytest.mark.bad_input
def test_knn_on_a_full_disk_or_read_only_folder(space, tmp_path, capsys):
    with small_disk(tmp_path, "8k") as disk:
        out = disk / "g"
        argv = ["knn", space["store"], "-k", "20", "-o", out, "-q"]
        assert_refused(argv, capsys, str(out), "no space left on device", code=1)
        assert_clean(disk, out)
    with read_only_folder(tmp_path) as folder:
        argv = ["knn", space["store"], "-o", folder / "g"]
        assert_refused(argv, capsys, str(folder), "not writable")


@pytest.mark.parametrize("method", ["exact", "ivf-flat", "ivf-gemm"])
def test_knn_same_seed_same_graph(space, tmp_path, method):
    options = ["-k", "6", "--method", method, "--seed", "7", "-q"]
    if method != "exact":
        options += ["--nlist", "6", "--nprobe", "2"]
    for name in ("a", "b"):
        assert main(["knn", str(space["store"]), "-o", str(tmp_path / name), *options]) == 0
    _assert_same_graph(tmp_path / "a", tmp_path / "b")
    assert open_knn_graph(tmp_path / "a").manifest["method"].get("seed") in (None, 7)


# -- stopped and rerun -------------------------------------------------------------------
def _stopped_then_rerun(
    argv: list[str], output: Path, sig: int, command: str, same: Callable[[Path], None]
) -> None:
    stopped_then_rerun(argv, output, sig, random.uniform(0, 0.4), same)


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_index_build_stopped_and_rerun(space, tmp_path, sig):
    def same(out: Path) -> None:
        _assert_same_store(out, space["store"])
        assert open_index(out).manifest["params"]["batch_index"] == "flat"

    out = tmp_path / "store"
    _stopped_then_rerun(["index", "build", space["emb"], "-o", out], out, sig, "index", same)


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_knn_stopped_and_rerun(space, tmp_path, sig):
    out = tmp_path / "graph"
    argv = ["knn", space["store"], "-k", "5", "-o", out, "--block", "8"]
    _stopped_then_rerun(argv, out, sig, "knn", lambda g: _assert_same_graph(g, space["graph"]))


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_index_add_stopped_leaves_the_store_as_committed(space, tmp_path, sig):
    import shutil

    reference = tmp_path / "reference"
    shutil.copytree(space["store"], reference)
    assert main(["index", "add", str(reference), str(space["more"]), "-q"]) == 0
    store = tmp_path / "store"
    shutil.copytree(space["store"], store)
    after = random.Random(sig).uniform(0.3, 1.5)  # into the start-up or the add itself
    code, err = interrupt(["index", "add", store, space["more"]], sig, after)
    stopped = check_interrupted(code, err, sig, "index")
    if len(open_index(store)) == len(open_index(reference)):
        _assert_same_store(store, reference)  # the add was committed before the signal
    else:
        assert stopped, err
        _assert_same_store(store, space["store"])  # as it was before the add
        assert main(["index", "add", str(store), str(space["more"]), "-q"]) == 0
        _assert_same_store(store, reference)
    if sig != signal.SIGKILL:
        assert not leftovers(tmp_path), leftovers(tmp_path)
