"""``kmervae evaluate matrix --protocol taxonomy`` in every mode of ``evaluate taxonomy``:
each cell equals the single evaluation, headline cells name what they count, and bad
options stop the matrix once with one line."""

from __future__ import annotations

import json

import pytest
import torch
from embed_factory import SMALL, random_profiles, write_profiles

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.evaluate.matrix import cell_paths, headline, short_name
from kmervae.model.files import save_model
from kmervae.model.vae import VAE


@pytest.fixture
def setup(tmp_path):
    ids = [f"c{i}" for i in range(120)]
    a = write_profiles(tmp_path / "a", random_profiles(120, SMALL.layout, seed=1), ids=ids)
    b = write_profiles(tmp_path / "b", random_profiles(120, SMALL.layout, seed=3), ids=ids)
    ref = write_profiles(tmp_path / "ref", random_profiles(90, SMALL.layout, seed=2))
    labels = tmp_path / "labels.tsv"
    labels.write_text(
        "id\tgenome\tspecies\n" + "".join(f"c{i}\tg{i % 6}\ts{i % 3}\n" for i in range(120))
    )
    ref_labels = tmp_path / "ref.tsv"
    # species s3 exists only in the reference; s0 only among the queries (unreachable)
    ref_labels.write_text(
        "id\tgenome\tspecies\n" + "".join(f"c{i}\tr{i % 4}\ts{1 + i % 3}\n" for i in range(90))
    )
    torch.manual_seed(0)
    model = save_model(VAE(SMALL).eval(), tmp_path / "vae")
    return {
        "a": str(a),
        "b": str(b),
        "ref": str(ref),
        "labels": str(labels),
        "ref_labels": str(ref_labels),
        "model": str(model),
        "tmp": tmp_path,
    }


def _matrix(setup, *extra):
    out = setup["tmp"] / "m"
    argv = ["evaluate", "matrix", "--models", setup["model"], "tetra", "--datasets"]
    argv += [setup["a"], setup["b"], "--protocol", "taxonomy", "--labels", setup["labels"]]
    argv += ["-k", "1,5", "-o", str(out), "--force", "-q", *extra]
    code = main(argv)
    md = (setup["tmp"] / "m.md").read_text() if code == 0 else ""
    data = json.loads((setup["tmp"] / "m.json").read_text()) if code == 0 else {}
    return code, md, data


def _single(setup, model, dataset, *extra):
    out = setup["tmp"] / "single.json"
    argv = ["evaluate", "taxonomy", model, dataset, "--labels", setup["labels"], "-k", "1,5"]
    assert main([*argv, "--json", str(out), "--force", "-q", *extra]) == 0
    return json.loads(out.read_text())


def _cell(data, model, dataset):
    (row,) = [r for r in data["results"] if r["model"] == model and r["dataset"] == dataset]
    return row


def test_reference_mode_cells_equal_evaluate_taxonomy(setup, capsys):
    ref = ["--reference", setup["ref"], "--reference-labels", setup["ref_labels"]]
    code, md, data = _matrix(setup, *ref, "--distance-threshold", "1e9")
    assert code == 0
    for model in (setup["model"], "tetra"):
        for dataset in (setup["a"], setup["b"]):
            cell = _cell(data, model, dataset)
            single = _single(setup, model, dataset, *ref, "--distance-threshold", "1e9")
            assert cell["mode"] == "reference" == single["mode"]
            assert cell["agreement"] == single["agreement"]
            assert cell["unreachable"] == single["unreachable"]
            assert cell["reference"]["n_rows"] == 90
            assert cell["within_threshold"]["fraction"] == 1.0
    cell = _cell(data, "tetra", setup["a"])
    # s0 has no reference: its 40 queries are left out of the species score
    assert cell["unreachable"]["species"] == 40
    assert cell["agreement"]["species"]["queries"] == 80
    assert "Mode: reference" in md and "90 rows of" in md
    species = cell["agreement"]["species"]["1"]
    assert f"species@1 {species:.3f} (n 80)" in md


def test_exclude_same_cells_equal_evaluate_taxonomy(setup):
    code, md, data = _matrix(setup, "--exclude-same", "genome")
    assert code == 0
    cell = _cell(data, setup["model"], setup["b"])
    single = _single(setup, setup["model"], setup["b"], "--exclude-same", "genome")
    assert cell["mode"] == "exclude-same genome" == single["mode"]
    assert cell["agreement"] == single["agreement"]
    assert cell["ranks"] == ["species"]
    assert "Mode: exclude-same genome" in md and "genome@1" not in md
    assert f"species@1 {cell['agreement']['species']['1']:.3f} (n 120)" in md


def test_clustering_template_reads_one_file_per_cell(setup):
    clusters = setup["tmp"] / "clusters"
    clusters.mkdir()
    for model in ("vae", "tetra"):
        for dataset in ("a", "b"):
            # vae on a: the species exactly; every other cell: the genome (finer)
            mod = 3 if (model, dataset) == ("vae", "a") else 6
            (clusters / f"{model}.{dataset}.tsv").write_text(
                "".join(f"c{i}\tk{i % mod}\n" for i in range(120))
            )
    template = str(clusters / "{model}.{dataset}.tsv")
    code, md, data = _matrix(setup, "--clustering", template)
    assert code == 0
    exact = _cell(data, setup["model"], setup["a"])["clustering"]
    assert exact["species"]["ari"] == pytest.approx(1.0)
    finer = _cell(data, "tetra", setup["a"])["clustering"]
    assert finer["genome"]["ari"] == pytest.approx(1.0)
    assert finer["species"]["ari"] < 0.9
    single = _single(setup, "tetra", setup["a"], "--clustering", str(clusters / "tetra.a.tsv"))
    assert single["clustering"] == finer
    assert "ARI/AMI genome 1.000/1.000, species 1.000/1.000" not in md
    assert "ARI/AMI genome " in md and "species 1.000/1.000" in md


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reference", "REF"], "reference needs reference_labels"),
        (["--reference-labels", "REFLAB"], "reference_labels needs reference"),
        (["--reference", "REF", "--reference-labels", "nope.tsv"], "nope.tsv: no such reference"),
        (["--reference", "nope.kmv", "--reference-labels", "REFLAB"], "no such reference dataset"),
        (
            ["--reference", "REF", "--reference-labels", "REFLAB", "--exclude-same", "genome"],
            "exclude_same applies within one dataset",
        ),
        (["--distance-threshold", "2"], "distance_threshold needs reference"),
        (["--clustering", "c/{model}.tsv"], "c/vae.tsv: no such clustering file (and 1 more)"),
        (["--clustering", "c/{run}.tsv"], "may hold only {model} and {dataset}"),
    ],
)
def test_bad_options_stop_before_any_cell(setup, capsys, extra, message):
    extra = [{"REF": setup["ref"], "REFLAB": setup["ref_labels"]}.get(x, x) for x in extra]
    code, _, _ = _matrix(setup, *extra)
    assert code == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (setup["tmp"] / "m.md").exists() and not (setup["tmp"] / "m.json").exists()


def test_missing_labels_file_is_one_line(setup, capsys):
    argv = ["evaluate", "matrix", "--models", "tetra", "--datasets", setup["a"]]
    argv += ["--protocol", "taxonomy", "-o", str(setup["tmp"] / "m"), "-q"]
    assert main([*argv, "--labels", str(setup["tmp"] / "gone.tsv")]) == 1
    err = capsys.readouterr().err
    assert "gone.tsv: no such labels file" in err and len(err.strip().splitlines()) == 1
    assert main(argv) == 1
    assert "needs --labels or --labels-per-dataset" in capsys.readouterr().err


def test_names_and_templates():
    assert short_name("runs/r1/model") == "model"
    assert short_name("out/test.kmv") == "test" and short_name("m.onnx") == "m"
    assert short_name("pca-384") == "pca-384" and short_name(".kmv") == ".kmv"
    paths = cell_paths("c/{model}-{dataset}.tsv", ["r/x.onnx", "tetra"], ["d/a.kmv"])
    assert paths == {("r/x.onnx", "d/a.kmv"): "c/x-a.tsv", ("tetra", "d/a.kmv"): "c/tetra-a.tsv"}
    assert set(cell_paths("one.tsv", ["m1", "m2"], ["d"]).values()) == {"one.tsv"}
    with pytest.raises(KmervaeError, match="both named 'model'"):
        cell_paths("{model}.tsv", ["r1/model", "r2/model"], ["d"])
    # without the placeholder, same-named models are fine
    assert len(cell_paths("{dataset}.tsv", ["r1/model", "r2/model"], ["d"])) == 2


def test_within_headline_keeps_one_query_count():
    result = {
        "protocol": "taxonomy",
        "mode": "within",
        "queries": 10,
        "ranks": ["genome", "species"],
        "agreement": {"genome": {"1": 0.5, "queries": 9}, "species": {"1": 0.75, "queries": 10}},
    }
    assert headline(result) == "genome@1 0.500; species@1 0.750 (n 10)"
    result["mode"] = "reference"
    assert headline(result) == "genome@1 0.500 (n 9); species@1 0.750 (n 10)"
