"""``kmervae report``: every section from the outputs of the real commands, the page's
self-containment and provenance, the map sample, and every bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import random_fasta
from hostile import assert_clean, assert_refused

from kmervae.cli import main
from kmervae.provenance import file_sha256
from kmervae.viz.maps import FORMAT_NAME, SCHEMA_VERSION, write_map_arrays

PROVENANCE = re.compile(
    r'<script type="application/json" id="kmervae-provenance">\n(.*?)\n</script>', re.S
)


def _run(*argv: object) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Two samples of random contigs through profile, fit-pca, embed, index, knn, cluster,
    map, compare and evaluate."""
    tmp = tmp_path_factory.mktemp("report")
    random_fasta(tmp / "a.fa", n=120, seed=1, min_len=800, max_len=2500)
    random_fasta(tmp / "raw_b.fa", n=120, seed=2, min_len=800, max_len=2500)
    (tmp / "b.fa").write_text((tmp / "raw_b.fa").read_text().replace(">contig_", ">b_contig_"))
    q = ["-q", "-t", "1"]
    _run("profile", tmp / "a.fa", tmp / "b.fa", "-o", tmp / "x.kmv", *q)
    _run("fit-pca", tmp / "x.kmv", "-o", tmp / "pca", "--components", "6", *q)
    _run("embed", tmp / "pca", tmp / "x.kmv", "-o", tmp / "x.emb", *q)
    _run("index", "build", tmp / "x.emb", "-o", tmp / "store", "--backend", "exact", "-q")
    _run("knn", tmp / "store", "-k", "10", "-o", tmp / "graph", *q)
    _run("cluster", tmp / "graph", "-o", tmp / "clusters", "--method", "leiden", "-q")
    fast = ["--n-iter", "60", "--early-iter", "40", "--perplexity", "10"]
    _run("map", tmp / "x.emb", "-o", tmp / "map", *fast, *q)
    ids = [
        line.split()[0][1:]
        for f in ("a.fa", "b.fa")
        for line in (tmp / f).read_text().splitlines()
        if line.startswith(">")
    ]
    rows = [(i, f"s{n % 3}", "A" if i.startswith("contig") else "B") for n, i in enumerate(ids)]
    (tmp / "samples.tsv").write_text(
        "contig\tsample\tgroup\n" + "".join(f"{i}\t{s}\t{g}\n" for i, s, g in rows)
    )
    (tmp / "labels.tsv").write_text(
        "id\tgenus\n" + "".join(f"{i}\t{g}{n % 2}\n" for n, (i, _, g) in enumerate(rows))
    )
    _run(
        "compare", tmp / "map", "--samples", tmp / "samples.tsv", "--a", "A", "--b", "B",
        "--clusters", tmp / "clusters" / "clusters.tsv", "-o", tmp / "cmp", "--format", "png",
        "--dpi", "40", "--bins", "20", "-q",
    )  # fmt: skip
    fid = ["--pool-size", "100", "--queries", "20", "-k", "5", "--bootstrap", "20"]
    for model, name in ((tmp / "pca", "fid_model.json"), ("pca-3", "fid_pca3.json")):
        _run(
            "evaluate", "fidelity", model, tmp / "x.kmv", *fid, "--training-rows", "include",
            "-o", tmp / name, *q,
        )  # fmt: skip
    _run(
        "evaluate", "clusters", tmp / "clusters", "--labels", tmp / "labels.tsv",
        "-o", tmp / "clu.json", *q,
    )  # fmt: skip
    return tmp


def _inputs(tmp: Path) -> list[Path]:
    names = ["pca", "map", "clusters", "cmp", "x.emb", "store", "graph", "x.kmv"]
    names += ["fid_model.json", "fid_pca3.json", "clu.json"]
    return [tmp / n for n in names]


@pytest.fixture(scope="module")
def report(outputs):
    out = outputs / "report.html"
    _run("report", *_inputs(outputs), "-o", out, "--title", "Two samples <test>", "-q")
    return out


def _provenance(text: str) -> dict:
    match = PROVENANCE.search(text)
    assert match, "no provenance block"
    return json.loads(match.group(1).replace("<\\/", "</"))


def _outside_scripts(text: str) -> str:
    return re.sub(r"<script\b.*?</script>", "", text, flags=re.S)


# -------------------------------------------------------------------------------- sections


def test_every_section_with_its_numbers(outputs, report):
    text = report.read_text()
    for anchor in ("training", "quality", "map", "clusters", "comparison", "provenance"):
        assert f'<section id="{anchor}">' in text, anchor
    assert "<title>Two samples &lt;test&gt;</title>" in text
    # fidelity: the model beside the baseline, both Spearman values, one highlighted
    model = json.loads((outputs / "fid_model.json").read_text())
    base = json.loads((outputs / "fid_pca3.json").read_text())
    assert f"{model['spearman']:.3f} [" in text and f"{base['spearman']:.3f} [" in text
    assert "pca (model, dim 6)" in text and "pca-3 (baseline, dim 3)" in text
    assert 'class="num best"' in text
    # cluster quality and the cluster folder's own tables
    clu = json.loads((outputs / "clu.json").read_text())
    n_clusters = clu["rows"][0]["sizes"]["clusters"]
    summary = (outputs / "clusters" / "summary.tsv").read_text().splitlines()
    assert summary[1].split("\t")[3] == str(n_clusters)
    assert f'<td class="num">{n_clusters:,}</td>' in text or f">{n_clusters}<" in text
    stats = (outputs / "clusters" / "clusters.stats.tsv").read_text().splitlines()
    assert f"of the {len(stats) - 1:,} clusters" in text
    # the map: every contig drawn, coloured by cluster, samples from the embeddings
    assert "All 240 contigs drawn" in text and "coloured by cluster" in text
    assert '"a.fa"' in text and '"b.fa"' in text
    # the comparison's figures, embedded
    assert text.count('<img src="data:image/png;base64,') == 3
    assert "composition.tsv: the first" in text
    # the model card of the PCA model folder
    assert "Model <code>" in text


def test_provenance_in_the_page_and_beside_it(outputs, report):
    text = report.read_text()
    record = _provenance(text)
    side = json.loads((outputs / "report.html.json").read_text())
    assert side["format"] == "kmervae-sidecar" and side["file"] == "report.html"
    assert side["bytes"] == report.stat().st_size and side["seconds"] > 0
    for key in ("inputs", "maps", "sections", "provenance", "max_points"):
        assert side[key] == record[key], key
    prov = record["provenance"]
    assert prov["command"][:2] == ["kmervae", "report"] and prov["seed"] == 1
    assert prov["kmervae_version"] in text
    by_path = {Path(i["path"]).name: i for i in record["inputs"]}
    assert by_path["map"]["manifest_sha256"] == file_sha256(outputs / "map" / "manifest.json")
    assert by_path["fid_model.json"]["kind"] == "evaluation"
    assert by_path["pca"]["kind"] == "model" and by_path["store"]["kind"] == "index"
    # the visible section lists each input's command and the checksums its manifest records
    emb = json.loads((outputs / "x.emb" / "manifest.json").read_text())
    assert emb["ids_sha256"] in text
    assert "kmervae knn" in text and "kmervae cluster" in text


def test_the_page_is_self_contained(report):
    text = report.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    rest = _outside_scripts(text)
    sources = re.findall(r"""<img\b[^>]*\bsrc\s*=\s*["']([^"']*)""", rest, re.I)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in rest and "https://" not in rest
    assert "@import" not in rest and "url(" not in rest
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.S)
    assert max(len(s) for s in scripts) > 500_000  # BokehJS itself, inline


def test_samples_file_names_each_contig(outputs, tmp_path):
    out = tmp_path / "r.html"
    _run("report", outputs / "map", "--samples", outputs / "samples.tsv", "-o", out, "-q")
    text = out.read_text()
    assert '"s0 (A)"' in text and '"s2 (B)"' in text
    assert "coloured by GC" in text
    assert _provenance(text)["samples"]["sha256"] == file_sha256(outputs / "samples.tsv")


def test_labels_colour_the_map_and_fill_the_tooltips(outputs, tmp_path):
    out = tmp_path / "r.html"
    _run("report", outputs / "map", "--labels", outputs / "labels.tsv", "-o", out, "-q")
    text = out.read_text()
    record = _provenance(text)
    # the default with --labels: its first column
    assert record["color"] == "genus" and record["maps"][0]["colour"] == "genus"
    assert record["labels"]["columns"] == ["genus"]
    assert record["labels"]["sha256"] == file_sha256(outputs / "labels.tsv")
    assert "coloured by genus" in text and "240 of the 240 drawn contigs labelled" in text
    assert "240 contigs, by genus" in text
    for name in ("A0", "A1", "B0", "B1"):
        assert f'"{name} (' in text, name  # a legend entry with its count
    assert '"@label_0"' in text and '"genus"' in text  # the tooltip's label row
    # a cluster folder among the inputs colours by cluster unless --color says otherwise
    both = [outputs / "map", outputs / "clusters", "--labels", outputs / "labels.tsv"]
    _run("report", *both, "-o", tmp_path / "c.html", "-q")
    assert _provenance((tmp_path / "c.html").read_text())["color"] == "cluster"
    _run("report", *both, "--color", "genus", "--top", "2", "-o", tmp_path / "g.html", "-q")
    text = (tmp_path / "g.html").read_text()
    assert _provenance(text)["color"] == "genus" and "the 2 most frequent named" in text
    assert "2 other categories" in text  # the rest, grey
    _run("report", outputs / "map", "--color", "length", "-o", tmp_path / "l.html", "-q")
    text = (tmp_path / "l.html").read_text()
    assert "coloured by length" in text and "log10 length (bp)" in text


def test_only_the_drawn_contigs_labels_are_kept(outputs, tmp_path):
    from kmervae.evaluate.labels import read_labels

    ids = (outputs / "map" / "ids.txt").read_text().split()
    labels = tmp_path / "own.tsv"
    labels.write_text("contig\tgenome\tgenus\n" + "".join(f"{i}\tg_{i}\t{i[0]}\n" for i in ids))
    out = tmp_path / "r.html"
    argv = ["--labels", labels, "--color", "genus", "--max-points", "50"]
    _run("report", outputs / "map", *argv, "-o", out, "-q")
    text = out.read_text()
    assert len(set(re.findall(r'"g_[^"]+"', text))) == 50  # the genomes of the drawn
    assert '"@label_1"' in text
    table = read_labels(labels, ids=set(ids[:7]))
    assert sorted(table.by_id) == sorted(ids[:7]) and table.ranks == ["genome", "genus"]


def test_a_big_map_is_sampled_with_a_density_image(outputs, tmp_path):
    runs = {}
    for seed in (1, 1, 2):
        out = tmp_path / f"r{len(runs)}.html"
        _run("report", outputs / "map", "--max-points", "50", "--seed", seed, "-o", out, "-q")
        runs[out] = _provenance(out.read_text())["maps"][0]
    (a, b, c) = runs.values()
    assert a["sampled"] and a["drawn"] == 50 and a["n_rows"] == 240 and a["density_image"]
    assert a["rows_sha256"] == b["rows_sha256"] != c["rows_sha256"]
    text = (tmp_path / "r0.html").read_text()
    assert "50 of the 240 contigs drawn: a random sample (seed 1)" in text
    assert text.count('<img src="data:image/png;base64,') == 1


def test_the_sample_is_what_the_seed_draws(tmp_path):
    from kmervae.viz.report.mapview import draw_rows

    assert draw_rows(100, 100, 1) is None
    rows = draw_rows(1000, 10, 7)
    assert rows is not None and len(rows) == 10 and (np.diff(rows) > 0).all()
    assert (rows == draw_rows(1000, 10, 7)).all()


def test_training_run_curves_and_best_epoch(outputs, tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    _run(
        "train", outputs / "x.kmv", "-o", run, "--ks", "4,3", "--hidden", "16", "--latent", "4",
        "--epochs", "8", "--batch-size", "16", "--seed", "1", "-q",
    )  # fmt: skip
    out = tmp_path / "r.html"
    _run("report", run, "-o", out, "-q")
    text = out.read_text()
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    best = max(h["epoch"] for h in history if h.get("best"))
    assert f"Dashed line: epoch {best}," in text
    assert f"{len(history)} of 8" in text
    assert "learning rate" in text and "Model card" in text
    assert _provenance(text)["inputs"][0]["kind"] == "run"


@pytest.mark.parametrize("layout", ["list", "mapping"])
def test_a_pipeline_folder_is_read_leniently(outputs, tmp_path, layout):
    folder = tmp_path / "pipe"
    folder.mkdir()
    shutil.copytree(outputs / "map", folder / "stages" / "map")
    shutil.copytree(outputs / "clusters", folder / "clusters")
    shutil.copy(outputs / "clu.json", folder / "clu.json")
    (folder / "notes.txt").write_text("not an input\n")
    if layout == "list":  # relative paths, one per stage
        stages: object = [
            {"name": "map", "output": "stages/map"},
            {"name": "later", "output": "not-yet"},
        ]
    else:  # stage name -> record, absolute paths in lists
        stages = {
            "map": {"status": "done", "outputs": [str(folder / "stages" / "map")]},
            "later": {"status": "started", "outputs": [str(folder / "not-yet")]},
        }
    provenance = {"command": ["kmervae", "pipeline"], "seed": 3}
    (folder / "pipeline.json").write_text(json.dumps({"stages": stages, "provenance": provenance}))
    out = tmp_path / "r.html"
    _run("report", folder, "-o", out, "-q")
    _run("report", folder, "-o", folder / "report.html", "-q")  # a report inside is passed over
    _run("report", folder, "-o", folder / "again.html", "-q")
    for page in (out, folder / "again.html"):
        record = _provenance(page.read_text())
        kinds = sorted(i["kind"] for i in record["inputs"])
        assert kinds == ["clusters", "evaluation", "map", "pipeline"]
        assert all(i["via"] == str(folder.resolve()) for i in record["inputs"][1:])


# -------------------------------------------------------------------------------- bad input


def _broken(outputs: Path, tmp: Path, case: str) -> Path:
    target = tmp / "input"
    if case == "unknown folder":
        target.mkdir()
        (target / "data.txt").write_text("x\n")
    elif case == "corrupt manifest":
        shutil.copytree(outputs / "map", target)
        (target / "manifest.json").write_text('{"format": "kmervae-map", ')
    elif case == "missing file":
        shutil.copytree(outputs / "map", target)
        (target / "coordinates.npy").unlink()
    elif case == "unknown format":
        shutil.copytree(outputs / "map", target)
        manifest = json.loads((target / "manifest.json").read_text())
        (target / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
    elif case == "bad result":
        target = tmp / "result.json"
        target.write_text(json.dumps({"protocol": "fidelity", "pool": 3}))
    elif case == "missing figure":
        shutil.copytree(outputs / "cmp", target)
        (target / "overlay.png").unlink()
    return target


BAD = {
    "no such path": "no such file or folder",
    "unknown folder": "not a kmervae output the report reads",
    "corrupt manifest": "not valid JSON",
    "missing file": "coordinates",
    "unknown format": "format 'other'",
    "bad result": "without 'spearman'",
    "missing figure": "overlay.png",
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(outputs, tmp_path, capsys, case):
    bad = tmp_path / "absent" if case == "no such path" else _broken(outputs, tmp_path, case)
    out = tmp_path / "r.html"
    line = assert_refused(["report", outputs / "map", bad, "-o", out], capsys, BAD[case])
    assert str(bad) in line
    assert_clean(tmp_path, out, tmp_path / "r.html.json")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--max-points", "0"], "argument --max-points: must be >= 1"),
        (["--seed", "-1"], "argument --seed"),
        (["--samples", "{tmp}/none.tsv"], "no such samples file"),
        (["--top", "0"], "argument --top: must be >= 1"),
        (["--labels", "{tmp}/none.tsv"], "none.tsv: no such labels file"),
        (["--color", "genus"], "--color genus needs --labels TSV with a column 'genus'"),
        (["--color", "cluster"], "--color cluster needs a cluster folder among the inputs"),
        (
            ["--labels", "{out}/labels.tsv", "--color", "phylum"],
            "labels.tsv: no column 'phylum' to colour the map by (columns: genus)",
        ),
        (
            ["--labels", "{tmp}/other.tsv"],
            "other.tsv: none of the 240 drawn contigs of {out}/map is labelled there",
        ),
        (
            ["--labels", "{tmp}/empty.tsv"],
            "empty.tsv: none of the 240 drawn contigs of {out}/map has a genus label there",
        ),
        (["--labels", "{tmp}/header.tsv"], "header.tsv: expected a TSV header"),
    ],
)
def test_bad_option_is_one_line(outputs, tmp_path, capsys, argv, needle):
    out = tmp_path / "r.html"
    (tmp_path / "other.tsv").write_text("id\tgenus\nnot_on_the_map\tX\n")
    first = (outputs / "map" / "ids.txt").read_text().split()[0]
    (tmp_path / "empty.tsv").write_text(f"id\tgenus\n{first}\tNA\n")
    (tmp_path / "header.tsv").write_text("id\n")
    argv = [a.format(tmp=tmp_path, out=outputs) for a in argv]
    needle = needle.format(out=outputs)
    assert_refused(["report", outputs / "map", *argv, "-o", out], capsys, needle)
    assert_clean(tmp_path, out, tmp_path / "r.html.json")


@pytest.mark.bad_input
def test_never_replaces_without_force(outputs, tmp_path, capsys):
    out = tmp_path / "r.html"
    out.write_text("old")
    assert_refused(["report", outputs / "map", "-o", out], capsys, "already exists", "--force")
    assert out.read_text() == "old"
    assert_clean(tmp_path, tmp_path / "r.html.json")


def test_force_keeps_the_old_report_when_the_new_one_fails(outputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.html"
    _run("report", outputs / "map", "-o", out, "-q")
    old, old_side = out.read_bytes(), (tmp_path / "r.html.json").read_bytes()
    # a bad input: refused before anything is written
    assert_refused(["report", tmp_path / "absent", "-o", out, "--force"], capsys, "absent")
    assert out.read_bytes() == old
    # a failure while the new files are moved into place: the old pair stays
    import kmervae.io.atomic

    def fail(moves):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kmervae.io.atomic, "commit_outputs", fail)
    assert_refused(["report", outputs / "map", "-o", out, "--force"], capsys, "No space left")
    assert out.read_bytes() == old and (tmp_path / "r.html.json").read_bytes() == old_side
    assert_clean(tmp_path)
    monkeypatch.undo()
    _run("report", outputs / "map", "-o", out, "--force", "--title", "again", "-q")
    assert "<title>again</title>" in out.read_text()


def test_the_output_cannot_be_an_input(outputs, tmp_path, capsys):
    shutil.copy(outputs / "clu.json", tmp_path / "x.json")
    assert_refused(
        ["report", tmp_path / "x.json", "-o", tmp_path / "x.json", "--force"], capsys,
        "is one of the inputs",
    )  # fmt: skip
    assert (tmp_path / "x.json").read_bytes() == (outputs / "clu.json").read_bytes()


def test_a_synthetic_map_from_the_map_writer(tmp_path):
    """A map as the map writer lays it out, without t-SNE: hover columns and GC colours."""
    folder = tmp_path / "m"
    folder.mkdir()
    rng = np.random.default_rng(0)
    n = 300
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    gc = rng.uniform(0.3, 0.6, n).astype(np.float32)
    gc[:5] = np.nan
    ids_sha = write_map_arrays(
        folder, xy, np.full(n, 1500, np.int64), gc, iter([[f"r{i}" for i in range(n)]])
    )
    manifest = {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, "n_rows": n,
                "method": "umap", "ids_sha256": ids_sha}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "r.html"
    _run("report", folder, "-o", out, "-q")
    text = out.read_text()
    assert "All 300 contigs drawn" in text and "UMAP 1" in text and '"r299"' in text
    assert "Training" not in text and 'id="quality"' not in text
