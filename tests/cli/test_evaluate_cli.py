"""``kmervae evaluate`` end to end, in-process: every protocol, the matrix, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
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
                "-o",
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
    base = ["evaluate", "taxonomy", "tetra", setup["ds"], "--labels", setup["labels"], "-k", "1,5"]
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
    assert main([*argv, "-k", "1,500"]) == 1
    assert "only 239 candidate neighbours" in capsys.readouterr().err
    other = tmp_path / "other.tsv"
    other.write_text("id\tspecies\nx1\ts\n")
    assert main(["evaluate", "taxonomy", "clr", setup["ds"], "--labels", str(other), "-q"]) == 1
    assert "do the ids match?" in capsys.readouterr().err
    assert main(["evaluate", "fidelity", "nonsense", setup["ds"], "-q"]) == 1
    assert "neither a model path nor a baseline" in capsys.readouterr().err


# -- evaluate clusters -----------------------------------------------------------------


def _genome_profiles(n_genomes=4, per_genome=15, seed=0):
    """Profiles of a few genomes, each a Dirichlet around its own composition."""
    rng = np.random.default_rng(seed)
    groups = []
    for width in SMALL.layout.widths:
        centres = rng.dirichlet(np.full(width, 0.7), size=n_genomes)
        rows = [rng.dirichlet(400 * c) for c in centres for _ in range(per_genome)]
        groups.append(np.array(rows))
    return np.concatenate(groups, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """The whole chain by the CLI: embed, index build, knn, cluster (MCL)."""
    if shutil.which("mcl") is None or shutil.which("rcl") is None:
        pytest.skip("the mcl package (mcl, mcxload, rcl) is not installed")
    tmp = tmp_path_factory.mktemp("clusters")
    n = 60
    ds = write_profiles(tmp / "ds", _genome_profiles())  # lengths 1000 + 7 i, gc i / 1000
    model, _ = write_model(tmp / "model")
    labels = tmp / "labels.tsv"
    labels.write_text(
        "id\tgenome\tspecies\n" + "".join(f"c{i}\tg{i // 15}\ts{i // 30}\n" for i in range(n))
    )
    steps = [
        ["embed", str(model), str(ds), "-o", str(tmp / "emb")],
        ["index", "build", str(tmp / "emb"), "-o", str(tmp / "store")],
        ["knn", str(tmp / "store"), "-o", str(tmp / "graph"), "-k", "10"],
        ["cluster", str(tmp / "graph"), "-o", str(tmp / "out")],
        ["cluster", str(tmp / "emb"), "-o", str(tmp / "hdb"), "--method", "hdbscan"],
    ]
    for argv in steps:
        assert main([*argv, "-q"]) == 0, argv
    assert main([*steps[-1], "--min-cluster-size", "5", "-q", "--force"]) == 0
    return {
        "tmp": tmp,
        "ds": str(ds),
        "model": str(model),
        "labels": str(labels),
        "store": str(tmp / "store"),
        "out": str(tmp / "out"),
    }


def test_clusters_folder_and_baselines_side_by_side(clustered, capsys):
    out = clustered["tmp"] / "quality.json"
    argv = ["evaluate", "clusters", clustered["out"], "--labels", clustered["labels"]]
    argv += ["--dataset", clustered["ds"], "--baseline", "tetra,pca-4", clustered["model"]]
    assert main([*argv, "-o", str(out), "--force"]) == 0
    text = capsys.readouterr().out
    assert "clustering: mcl-I3" in text and "evaluated 60: 60 clustered" in text
    assert "| mcl-I3 | 4 | 0 | 60 | 15 | 15 | 1.40 |" in text
    assert "| mcl-I3 | genome | 1.000 | 1.000 | 100.0 % | 1.000 | 1.000 | 100.0 % (4) |" in text
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["name"] for r in rows[:3]] == ["mcl-I3", "tetra", "pca-4"]
    assert [r["kind"] for r in rows] == ["input", "baseline", "baseline", "model"]
    assert result["k"] == 10 and result["request"]["methods"] == ["mcl"]
    assert result["provenance"]["command"][:3] == ["kmervae", "evaluate", "clusters"]
    # the model through cluster_vectors is the clustering `kmervae cluster` made of it
    assert rows[3]["sizes"] == rows[0]["sizes"] and rows[3]["labels"] == rows[0]["labels"]
    assert rows[0]["labels"]["genome"]["recovered"] == {
        "recovered": 4,
        "labels": 4,
        "share": 1.0,
        "by": "bp",
        "min_purity": 0.95,
        "min_completeness": 0.9,
    }
    assert rows[0]["labels"]["species"]["kept_whole"] == {"share": 0.0, "labels": 2}


def test_clusters_plain_file_with_store_or_dataset(clustered, capsys):
    tsv = clustered["tmp"] / "vamb.tsv"
    tsv.write_text(
        "clustername\tcontigname\n"
        + "".join(f"b{i // 30}\tc{i}\n" for i in range(0, 60, 2))
        + "b9\tghost\n"
    )
    argv = ["evaluate", "clusters", str(tsv), "--labels", clustered["labels"], "-q"]
    assert main([*argv, "--store", clustered["store"], "--ranks", "species"]) == 0
    text = capsys.readouterr().out
    assert "evaluated 30: 30 clustered, 0 in no cluster" in text
    assert "clustered ids not in the store (left out): 1" in text
    assert "| vamb | species | 1.000 | 1.000 | 100.0 % | 1.000 | 1.000 | 100.0 % (2) |" in text
    # --min-length: the 30 odd contigs of at least 1000 bp count as unclustered
    assert main([*argv, "--dataset", clustered["ds"], "--min-length", "1000"]) == 0
    text = capsys.readouterr().out
    assert "contigs: dataset" in text and "evaluated 60: 30 clustered, 30 in no cluster" in text
    assert "| vamb | genome |" in text and "| 0/4 | 50.0 % |" in text


def test_clusters_folder_made_from_embeddings(clustered, capsys):
    """HDBSCAN of embeddings: lengths and GC from the embeddings, noise in no cluster; the
    model as a baseline is HDBSCAN of the same vectors. (A baseline of another dimension
    would cost fast_hdbscan a fresh numba compilation, half a minute.)"""
    hdb = str(clustered["tmp"] / "hdb")
    argv = ["evaluate", "clusters", hdb, "--labels", clustered["labels"], "-q", "-o"]
    out = clustered["tmp"] / "hdb.json"
    argv += [str(out), "--dataset", clustered["ds"], "--baseline", clustered["model"]]
    assert main([*argv, "--force"]) == 0
    text = capsys.readouterr().out
    lines = (clustered["tmp"] / "hdb" / "clusters.tsv").read_text().splitlines()
    noise = 60 - (len(lines) - 1)
    assert f"contigs: embeddings {clustered['tmp'] / 'emb'} (60 rows); evaluated 60: " in text
    assert f"{60 - noise} clustered, {noise} in no cluster" in text
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["name"] == "hdbscan" and rows[1]["clustering"] == "hdbscan"
    assert rows[1]["sizes"] == rows[0]["sizes"] and rows[1]["labels"] == rows[0]["labels"]


def test_clusters_one_cluster_warns_and_reports(clustered, capsys):
    one = clustered["tmp"] / "one.tsv"
    one.write_text("".join(f"c{i}\tA\n" for i in range(20)))
    assert main(["evaluate", "clusters", str(one), "--store", clustered["store"]]) == 0
    captured = capsys.readouterr()
    assert "warning: one: every clustered contig is in one cluster" in captured.out
    assert "WARNING: one: every clustered contig is in one cluster" in captured.err
    assert "| one | 1 | 0 | 20 | 20 |" in captured.out


def test_clusters_bad_input(clustered, capsys):
    tmp = clustered["tmp"]
    stranger = tmp / "stranger.tsv"
    stranger.write_text("x1\t1\nx2\t1\n")
    nolab = tmp / "nolab.tsv"
    nolab.write_text("id\tgenome\nzz\tg\n")
    existing = tmp / "exists.json"
    existing.write_text("{}")
    out = clustered["out"]
    cases = [
        ([str(tmp / "missing")], "no such cluster folder or clustering file"),
        ([str(stranger), "--store", clustered["store"]], "none of the 2 clustered ids is in"),
        ([str(stranger)], "needs a store or a profile dataset"),
        ([out, "--baseline", "clr"], "baselines need dataset"),
        ([out, "--labels", str(nolab)], "do the ids match?"),
        ([out, "--labels", str(tmp / "none.tsv")], "no such labels file"),
        ([out, "--clustering", "mcl-I9"], "no clustering named 'mcl-I9' (clusterings: mcl-I3)"),
        ([str(stranger), "--clustering", "a"], "is a plain clustering file"),
        ([out, "-o", str(existing)], "already exists (use --force to replace it)"),
        ([out, "--cluster-request", str(stranger)], "not valid JSON"),
    ]
    for extra, message in cases:
        assert main(["evaluate", "clusters", *extra, "-q"]) == 1, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert existing.read_text() == "{}"


def test_clusters_baseline_failure_is_recorded(clustered, capsys):
    """A recipe that leaves no edge for a baseline: its row is an error, the rest stands."""
    request = clustered["tmp"] / "request.json"
    request.write_text(json.dumps({"methods": ["mcl"], "graph": {"max_distance": 1e-9}}))
    argv = ["evaluate", "clusters", clustered["out"], "--dataset", clustered["ds"], "-q"]
    assert main([*argv, "--baseline", "tetra", "--cluster-request", str(request)]) == 1
    text = capsys.readouterr().out
    assert "| mcl-I3 | 4 |" in text and "tetra: error: no edge left after thresholding" in text


def test_matrix_clusters_protocol(clustered, capsys):
    out = clustered["tmp"] / "mclusters"
    argv = ["evaluate", "matrix", "--models", clustered["model"], "tetra", "--datasets"]
    argv += [clustered["ds"], "--protocol", "clusters", "--labels", clustered["labels"]]
    argv += ["--cluster-request", clustered["out"], "-o", str(out), "-q", "--force"]
    assert main(argv) == 0
    md = (clustered["tmp"] / "mclusters.md").read_text()
    assert "with mcl on the graph of their 10 nearest neighbours (every edge)" in md
    assert md.count("4 clusters (0 singletons); GC spread median 1.40 pp, ≤5 pp 1.000") == 2
    assert "species ARI" in md and "species whole 0.000 (n 2); genomes recovered 4/4" in md
    data = json.loads((clustered["tmp"] / "mclusters.json").read_text())
    cell = data["results"][0]
    assert cell["protocol"] == "clusters" and cell["k"] == 10 and cell["contigs"] == 60
    # the same recipe as `kmervae cluster`: the model's cell is the folder's clustering
    single = json.loads((clustered["tmp"] / "quality.json").read_text())["rows"][0]
    assert cell["rows"][0]["labels"] == single["labels"]
    capsys.readouterr()
    bad = ["evaluate", "matrix", "--models", "tetra", "--datasets", clustered["ds"]]
    bad += ["--protocol", "clusters", "-o", str(out), "--force", "-q"]
    assert main([*bad, "--labels", str(clustered["tmp"] / "none.tsv")]) == 1
    assert "no such labels file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*bad, "--min-length", "-5"])
    assert exit_info.value.code == 2
    assert "argument --min-length: must be >= 0" in capsys.readouterr().err
