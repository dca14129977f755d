"""``kmervae evaluate`` end to end, in-process: every protocol, the matrix, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from embed_factory import SMALL, random_profiles, write_model, write_profiles

from kmervae.cli import main
from kmervae.model.files import save_model
from kmervae.model.vae import VAE


@pytest.fixture
def setup(tmp_path):
    x = random_profiles(240, SMALL.layout, seed=1)
    ids = [f"c{i}" for i in range(240)]
    ds = write_profiles(tmp_path / "ds", x, ids=ids)
    ref = write_profiles(tmp_path / "ref", random_profiles(90, SMALL.layout, seed=2))
    labels = tmp_path / "labels.tsv"
    with open(labels, "w") as fh:
        fh.write("id\tgenome\tspecies\n")
        for i in range(230):  # the last 10 rows stay unlabelled
            fh.write(f"c{i}\tg{i % 6}\ts{i % 3}\n")
        fh.write("ghost\tg0\ts0\n")
    ref_labels = tmp_path / "ref.tsv"
    ref_labels.write_text(
        "id\tgenome\tspecies\n" + "".join(f"c{i}\tr{i % 4}\ts{i % 3}\n" for i in range(90))
    )
    torch.manual_seed(0)
    full = save_model(VAE(SMALL).eval(), tmp_path / "full")
    encoder_only, _ = write_model(tmp_path / "enc")
    return {
        "ds": str(ds),
        "ref": str(ref),
        "labels": str(labels),
        "ref_labels": str(ref_labels),
        "full": str(full),
        "enc": str(encoder_only),
        "tmp": tmp_path,
    }


def test_fidelity_prints_pool_beside_every_score(setup, capsys):
    out = setup["tmp"] / "fid.json"
    argv = ["evaluate", "fidelity", setup["full"], setup["ds"], "--pool-size", "200"]
    assert (
        main(
            [
                *argv,
                "--queries",
                "20",
                "--neighbours",
                "10",
                "--bootstrap",
                "50",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    score_lines = [
        line for line in text.splitlines() if line.startswith(("Spearman", "Pearson", "mean"))
    ]
    # Spearman, Pearson, top 1/5/10 (k = 10), random pairs
    assert len(score_lines) == 6 and all("(pool 200)" in line for line in score_lines)
    result = json.loads(out.read_text())
    assert result["pool"] == 200 and result["queries"] == 20 and result["k"] == 10
    assert result["provenance"]["command"][:3] == ["kmervae", "evaluate", "fidelity"]
    assert len(result["ci"]["spearman"]) == 2
    # a baseline through the same code; the pool defaults to all held-out rows
    assert main(["evaluate", "fidelity", "pca-4", setup["ds"], "--fit", setup["ref"], "-q"]) == 0
    assert "(pool 240)" in capsys.readouterr().out


def test_taxonomy_modes(setup, capsys):
    base = ["evaluate", "taxonomy", "tetra", setup["ds"], "--labels", setup["labels"], "--k", "1,5"]
    clusters = setup["tmp"] / "clusters.tsv"
    clusters.write_text("".join(f"c{i}\t{i % 3}\n" for i in range(240)))
    out = setup["tmp"] / "tax.json"
    assert main([*base, "--clustering", str(clusters), "--json", str(out)]) == 0
    text = capsys.readouterr()
    assert "10 rows without labels, 1 labelled ids not in the dataset" in text.out
    assert "10 of 240 dataset ids have no line" in text.err
    result = json.loads(out.read_text())
    assert result["mode"] == "within" and result["agreement"]["species"]["queries"] == 230
    assert result["clustering"]["species"]["ari"] == pytest.approx(1.0)
    assert main([*base, "--exclude-same", "genome", "-q"]) == 0
    text = capsys.readouterr().out
    assert "mode: exclude-same genome" in text and "| genome |" not in text
    ref = ["--reference", setup["ref"], "--reference-labels", setup["ref_labels"]]
    assert main([*base, *ref, "--distance-threshold", "100", "--max-queries", "50", "-q"]) == 0
    text = capsys.readouterr().out
    assert "mode: reference; 50 queries, 90 candidate" in text
    assert "closer than 100.0: 1.000 of queries" in text


def test_reconstruction_and_matrix(setup, capsys):
    assert main(["evaluate", "reconstruction", setup["full"], setup["ds"]]) == 0
    text = capsys.readouterr().out
    assert "reconstruction MSE" in text and "4-mers:" in text and "on 240 rows" in text
    assert main(["evaluate", "reconstruction", setup["enc"], setup["ds"]]) == 1
    assert "encoder-only model has no decoder" in capsys.readouterr().err
    out = setup["tmp"] / "matrix"
    argv = ["evaluate", "matrix", "--models", setup["full"], "tetra", "pca-3"]
    argv += ["--datasets", setup["ds"], setup["ref"], "--protocol", "fidelity", "-o", str(out)]
    assert main([*argv, "--queries", "10", "--neighbours", "5", "--bootstrap", "20", "-q"]) == 0
    md = (setup["tmp"] / "matrix.md").read_text()
    assert md.count("(pool ") == 6 and "| tetra |" in md
    data = json.loads((setup["tmp"] / "matrix.json").read_text())
    assert len(data["results"]) == 6 and data["protocol"] == "fidelity"
    capsys.readouterr()
    # a baseline has no decoder: recorded as an error, the other cells still computed
    out2 = setup["tmp"] / "rec"
    argv = ["evaluate", "matrix", "--models", setup["full"], "clr", "--datasets", setup["ds"]]
    assert main([*argv, "--protocol", "reconstruction", "-o", str(out2), "-q"]) == 1
    assert "error: clr: a baseline has no decoder" in (setup["tmp"] / "rec.md").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pool-size", "500"], "only 240 held-out rows"),
        (["--pool-size", "40", "--neighbours", "50"], "pool of at least 51 rows"),
    ],
)
def test_fidelity_bad_requests(setup, capsys, extra, message):
    assert main(["evaluate", "fidelity", "clr", setup["ds"], *extra, "-q"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_input_messages(setup, capsys, tmp_path):
    five = SMALL.replace(ks=(5, 4, 3, 2, 1))
    model, _ = write_model(tmp_path / "five", five)
    assert main(["evaluate", "fidelity", str(model), setup["ds"], "-q"]) == 1
    assert "feature layouts do not match" in capsys.readouterr().err
    argv = ["evaluate", "taxonomy", "clr", setup["ds"], "--labels", setup["labels"], "-q"]
    assert main([*argv, "--k", "1,500"]) == 1
    assert "only 239 candidate neighbours" in capsys.readouterr().err
    other = tmp_path / "other.tsv"
    other.write_text("id\tspecies\nx1\ts\n")
    assert main(["evaluate", "taxonomy", "clr", setup["ds"], "--labels", str(other), "-q"]) == 1
    assert "do the ids match?" in capsys.readouterr().err
    assert main(["evaluate", "fidelity", "nonsense", setup["ds"], "-q"]) == 1
    assert "neither a model path nor a baseline" in capsys.readouterr().err
