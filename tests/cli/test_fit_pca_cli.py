"""``kmervae fit-pca`` end to end: the model folder, and embed, index, search, knn and
evaluate taking it as they take a VAE model; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import random_fasta
from embed_factory import SMALL, random_profiles, write_model, write_profiles
from hostile import assert_clean, assert_refused

from kmervae.cli import main
from kmervae.index import open_index
from kmervae.io.embeddings import open_embeddings
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.pca_folder import PCAEncoder


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit_pca")
    ds = write_profiles(tmp / "ds", random_profiles(300, SMALL.layout, seed=1))
    test = write_profiles(
        tmp / "test", random_profiles(120, SMALL.layout, seed=2), ids=[f"t{i}" for i in range(120)]
    )
    model = tmp / "pca6"
    argv = ["fit-pca", ds, "-o", model, "--components", "6", "-q"]
    assert main([str(a) for a in argv]) == 0
    return {"tmp": tmp, "ds": ds, "test": test, "model": model}


def test_fit_writes_a_model_folder_with_its_log(space):
    model = space["model"]
    names = sorted(p.name for p in model.iterdir())
    assert names == ["README.md", "card.json", "config.json", "kmervae.log", "pca.npz"]
    card = json.loads((model / "card.json").read_text())
    assert card["kind"] == "pca" and card["components"] == 6 and card["rows_used"] == 300
    assert card["provenance"]["command"][:2] == ["kmervae", "fit-pca"]
    assert card["training_data"]["path"] == str(Path(space["ds"]).resolve())
    log = (model / "kmervae.log").read_text()
    assert "command: kmervae fit-pca" in log and "components hold" in log
    assert "6 principal components of the CLR" in (model / "README.md").read_text()


def test_embed_index_search_and_knn_take_the_pca_model(space, tmp_path, capsys):
    model, ds = str(space["model"]), str(space["ds"])
    emb = tmp_path / "emb"
    assert main(["embed", model, ds, "-o", str(emb), "-q"]) == 0
    stored = open_embeddings(emb)
    assert stored.latent == 6 and stored.model_fingerprint == PCAEncoder(model).fingerprint
    assert stored.manifest["model"]["backend"] == "numpy"
    store = tmp_path / "store"
    assert main(["index", "build", str(emb), "-o", str(store), "-q"]) == 0
    assert open_index(store).model_fingerprint == stored.model_fingerprint
    fasta = tmp_path / "new.fa"
    records = random_fasta(fasta, n=3, seed=5, min_len=500)
    capsys.readouterr()
    argv = ["search", str(store), "--fasta", str(fasta), "--model", model, "-k", "2"]
    assert main(argv) == 0
    hits = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [h[0] for h in hits] == [r for r in records for _ in range(2)]
    assert main(["search", str(store), "--embeddings", str(emb), "-k", "1", "-q"]) == 0
    graph, clusters = tmp_path / "graph", tmp_path / "clusters"
    assert main(["knn", str(store), "-k", "5", "-o", str(graph), "-q"]) == 0
    assert main(["cluster", str(graph), "-o", str(clusters), "-q"]) == 0
    # the model as a baseline of evaluate clusters reproduces the folder's clustering
    scored = tmp_path / "scored.json"
    argv = ["evaluate", "clusters", clusters, "--baseline", model, "--dataset", ds, "-k", "5"]
    assert main([*map(str, argv), "-o", str(scored), "-q"]) == 0
    rows = json.loads(scored.read_text())["rows"]
    assert [r["kind"] for r in rows] == ["input", "model"]
    assert rows[1]["sizes"] == rows[0]["sizes"]
    # another PCA, another space
    other = tmp_path / "other"
    argv = ["fit-pca", ds, "-o", str(other), "--components", "6", "--sample", "100", "-q"]
    assert main(argv) == 0
    argv = ["search", str(store), "--fasta", str(fasta), "--model", str(other)]
    assert_refused(argv, capsys, "is not the model of the store")


def test_evaluate_matrix_compares_a_vae_with_the_pca_model(space, tmp_path):
    vae, _ = write_model(tmp_path / "vae")
    out = tmp_path / "matrix"
    argv = ["evaluate", "matrix", "--models", str(vae), str(space["model"]), "pca-6"]
    argv += ["--datasets", str(space["test"]), "--fit", str(space["ds"])]
    argv += ["--protocol", "fidelity", "--bootstrap", "0", "--pool-size", "100", "-q"]
    assert main([*argv, "--queries", "30", "-k", "10", "-o", str(out)]) == 0
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    by_model = {Path(r["model"]).name: r for r in results}
    assert set(by_model) == {"vae", "pca6", "pca-6"}
    assert all("error" not in r for r in results)
    # the fitted model and the baseline fitted on the same rows score alike
    for key in ("spearman", "pearson", "mean_clr_mse_top", "random"):
        assert by_model["pca6"][key] == by_model["pca-6"][key], key
    assert "pca6 | " in out.with_suffix(".md").read_text()


def test_evaluate_checks_the_rows_the_pca_was_fitted_on(space, capsys):
    argv = ["evaluate", "fidelity", space["model"], space["ds"], "--bootstrap", "0"]
    assert_refused(argv, capsys, "300 of 300 evaluated rows", "training rows of")
    argv = ["evaluate", "reconstruction", space["model"], space["test"]]
    assert_refused(argv, capsys, "a PCA model has no decoder")


def _with_nan(tmp: Path) -> Path:
    x = random_profiles(50, SMALL.layout, seed=4)
    x[17, 3] = float("nan")
    return write_profiles(tmp / "nan", x)


def _other_layout(tmp: Path) -> Path:
    tetra = FeatureLayout((4,))
    x = random_profiles(20, tetra, seed=3)
    return write_profiles(tmp / "tetra", x, layout=tetra, ids=[f"q{i}" for i in range(20)])


#: case -> (argv with MODEL, DS, TEST, OUT, TMP placeholders, exit status, what the line says)
BAD = {
    "too many components": (
        ["fit-pca", "DS", "-o", "OUT", "--components", "181"],
        1,
        "has 180 features; choose 1 to 180",
    ),
    "no component": (["fit-pca", "DS", "-o", "OUT", "--components", "0"], 2, "--components"),
    "sample above the rows": (
        ["fit-pca", "DS", "-o", "OUT", "--components", "4", "--sample", "301"],
        1,
        "sample 301",
    ),
    "sample of one row": (
        ["fit-pca", "DS", "-o", "OUT", "--components", "4", "--sample", "1"],
        2,
        "--sample",
    ),
    "more components than rows allow": (
        ["fit-pca", "DS", "-o", "OUT", "--components", "20", "--sample", "10"],
        1,
        "at most 9 components",
    ),
    "existing output": (["fit-pca", "DS", "-o", "MODEL", "--components", "4"], 1, "--force"),
    "no such dataset": (["fit-pca", "TMP/nope", "-o", "OUT", "--components", "4"], 1, "nope"),
    "a row with NaN": (
        ["fit-pca", "NAN", "-o", "OUT", "--components", "4"],
        1,
        "row 18 (id 'c17') has NaN",
    ),
    "sigma": (["embed", "MODEL", "TEST", "-o", "OUT", "--sigma"], 1, "has no sigma"),
    "another layout": (["embed", "MODEL", "TETRA", "-o", "OUT"], 1, "another feature layout"),
    "another layout, evaluate": (
        ["evaluate", "fidelity", "MODEL", "TETRA", "--bootstrap", "0", "-k", "5", "--queries", "5"],
        1,
        "do not include",
    ),
    "gpu": (["embed", "MODEL", "TEST", "-o", "OUT", "--device", "cuda"], 1, "on the CPU"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(space, tmp_path, capsys, case):
    argv, code, needle = BAD[case]
    names = {
        "MODEL": space["model"],
        "DS": space["ds"],
        "TEST": space["test"],
        "OUT": tmp_path / "out",
        "TETRA": _other_layout(tmp_path) if "TETRA" in argv else None,
        "NAN": _with_nan(tmp_path) if "NAN" in argv else None,
    }
    argv = [str(names.get(a, a)).replace("TMP", str(tmp_path)) for a in argv]
    before = sorted(p.name for p in space["model"].iterdir())
    assert_refused(argv, capsys, needle, code=code)
    assert_clean(tmp_path, tmp_path / "out")
    assert_clean(space["tmp"])
    assert sorted(p.name for p in space["model"].iterdir()) == before
