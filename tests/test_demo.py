"""``kmervae demo``: the shipped genomes and their licences, the seeded mock metagenome, the
ids the pipeline will give its contigs, bad options, and (where the pipeline is installed)
the small demo end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
from conftest import SHARED_GENOMES
from hostile import assert_refused, leftovers

from kmervae.demo import build_demo_inputs, demo_genomes, shipped_data
from kmervae.demo.inputs import CONTIG_LENGTHS, COVERAGE, LABEL_COLUMNS, SAMPLES
from kmervae.io.fasta import read_fasta_records

#: the licences the package may ship genomes under
PERMISSIVE = re.compile(r"^(BSD-3-clause|MIT)$", re.IGNORECASE)


def _catalog() -> list[dict[str, str]]:
    text = (shipped_data() / "catalog.tsv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "inputs"
    build_demo_inputs(folder, size="small", seed=1)
    return folder


# ----------------------------------------------------------------------- the shipped data
def test_genomes_ship_in_the_package():
    data = shipped_data()
    shipped = sorted(p.name for p in data.iterdir() if p.name.endswith(".fa.gz"))
    rows = _catalog()
    assert shipped == sorted(r["file"] for r in rows) == sorted(COVERAGE)
    assert [g.file for g in demo_genomes()] == [r["file"] for r in rows]
    total = sum(len((data / name).read_bytes()) for name in shipped)
    assert total <= 5_000_000, f"{total} bytes of genomes: keep the package small"
    for name in shipped:
        records = list(read_fasta_records(Path(str(data / name))))
        assert records and all(len(seq) > 0 for _, _, seq in records), name
    # several phyla and domains
    assert len({g.phylum for g in demo_genomes()}) >= 5
    assert {g.domain for g in demo_genomes()} == {"Bacteria", "Archaea", "Viruses"}


def test_genomes_are_the_collection_s_bytes_and_rows():
    if not (SHARED_GENOMES / "catalog.tsv").exists():
        pytest.skip("the shared real-genome collection is not beside this checkout")
    shared = {
        r["file"]: r
        for r in csv.DictReader(
            (SHARED_GENOMES / "catalog.tsv").read_text().splitlines(), delimiter="\t"
        )
    }
    header = (SHARED_GENOMES / "catalog.tsv").read_text().splitlines()[0]
    assert (shipped_data() / "catalog.tsv").read_text().splitlines()[0] == header
    for row in _catalog():
        assert row == shared[row["file"]]
        shipped = (shipped_data() / row["file"]).read_bytes()
        assert shipped == (SHARED_GENOMES / row["file"]).read_bytes(), row["file"]


def test_every_genome_has_a_permissive_licence_and_its_attribution():
    attribution = (shipped_data() / "ATTRIBUTION.md").read_text(encoding="utf-8")
    table = {}
    for line in attribution.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].endswith(".fa.gz"):
            table[cells[0]] = cells
    for row in _catalog():
        licence = row["license"]
        assert PERMISSIVE.match(licence), (row["file"], licence)
        assert "gpl" not in licence.lower()
        assert row["file"] in table, f"{row['file']} is not attributed in ATTRIBUTION.md"
        file, organism, _strain, package, path, listed, holders = table[row["file"]]
        assert organism.startswith(row["organism"].split(" subsp.")[0]), row["file"]
        assert package == row["source_package"] and path == row["source_path_in_package"]
        assert listed.lower() == licence.lower(), (file, listed, licence)
        assert holders
    assert set(table) == {r["file"] for r in _catalog()}
    # the licence texts themselves
    assert "Redistribution and use in source and binary forms" in attribution
    assert "Permission is hereby granted, free of charge" in attribution


# ---------------------------------------------------------------------- the mock metagenome
def test_inputs_are_seeded(tmp_path, small_inputs):
    again = tmp_path / "again"
    build_demo_inputs(again, size="small", seed=1)
    other = tmp_path / "other"
    build_demo_inputs(other, size="small", seed=2)
    for name in ("A1.fa", "A2.fa", "B1.fa", "B2.fa", "samples.tsv", "labels.tsv", "contigs.tsv"):
        assert (again / name).read_bytes() == (small_inputs / name).read_bytes(), name
    assert (other / "A1.fa").read_bytes() != (small_inputs / "A1.fa").read_bytes()
    manifest = json.loads((small_inputs / "manifest.json").read_text())
    assert manifest["format"] == "kmervae-demo-inputs" and manifest["seed"] == 1
    assert manifest["provenance"]["kmervae_version"]
    assert [s["sample"] for s in manifest["samples"]] == [s for s, _ in SAMPLES]
    assert all(len(g["sha256"]) == 64 for g in manifest["genomes"])


def test_ids_are_those_the_profile_stage_gives(tmp_path, small_inputs):
    from kmervae.io.dataset import open_dataset
    from kmervae.kmers.profile import profile_fasta

    fastas = [small_inputs / f"{s}.fa" for s, _ in SAMPLES]
    profile_fasta(fastas, tmp_path / "profiles", prefix_ids=True)
    ids = open_dataset(tmp_path / "profiles").ids()
    samples = _read_tsv(small_inputs / "samples.tsv")
    labels = _read_tsv(small_inputs / "labels.tsv")
    origins = _read_tsv(small_inputs / "contigs.tsv")
    assert [r["contig"] for r in samples] == ids
    assert [r["contig"] for r in labels] == ids
    assert [r["contig_id"] for r in origins] == ids
    assert list(labels[0]) == ["contig", *LABEL_COLUMNS]
    assert {r["sample"] for r in samples} == {s for s, _ in SAMPLES}
    assert all(r["sample"][0] == r["group"] for r in samples)
    assert 300 <= len(ids) <= 600


def test_contigs_are_pieces_of_the_genomes_with_group_abundances(small_inputs):
    sequences = {}
    for genome in demo_genomes():
        path = Path(str(shipped_data() / genome.file))
        sequences[genome.file] = {ident: seq for ident, _, seq in read_fasta_records(path)}
    contigs = {}
    for sample, _ in SAMPLES:
        for ident, _, seq in read_fasta_records(small_inputs / f"{sample}.fa"):
            contigs[f"{sample}_{ident}"] = seq
    origins = _read_tsv(small_inputs / "contigs.tsv")
    for row in origins:
        start, end = int(row["start"]), int(row["end"])
        assert CONTIG_LENGTHS[0] <= end - start == int(row["length"]) <= CONTIG_LENGTHS[1]
        assert contigs[row["contig_id"]] == sequences[row["file"]][row["record"]][start:end]
    labels = {r["contig"]: r["genus"] for r in _read_tsv(small_inputs / "labels.tsv")}
    groups = {r["contig"]: r["group"] for r in _read_tsv(small_inputs / "samples.tsv")}

    def share(genus: str, group: str) -> float:
        members = [c for c in groups if groups[c] == group]
        return sum(labels[c] == genus for c in members) / len(members)

    assert share("Escherichia", "A") > 2 * share("Escherichia", "B")
    assert share("Staphylococcus", "B") > 2 * share("Staphylococcus", "A")
    assert len(set(labels.values())) == len(COVERAGE)


def test_full_size_is_thousands_of_contigs(tmp_path):
    result = build_demo_inputs(tmp_path / "full", size="full", seed=1)
    assert 6000 <= result.n_contigs <= 10000
    assert [p.name for p in result.fastas] == ["A1.fa", "A2.fa", "B1.fa", "B2.fa"]


# ----------------------------------------------------------------------------- bad options
@pytest.mark.bad_input
def test_bad_options_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused(["demo", "-o", out, "--size", "bogus"], capsys, "--size", code=2)
    assert_refused(["demo", "-o", out, "--epochs", "0"], capsys, "--epochs", code=2)
    assert_refused(["demo", "-o", out, "--seed", "-1"], capsys, "--seed", code=2)
    assert not out.exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me\n")
    assert_refused(["demo", "-o", a_file], capsys, str(a_file), "is a file", code=1)
    assert_refused(["demo", "-o", a_file, "--force"], capsys, "is a file", code=1)
    assert a_file.read_text() == "keep me\n"
    out.mkdir()
    (out / "mine.txt").write_text("mine\n")
    assert_refused(["demo", "-o", out], capsys, str(out), "already exists", "--force", code=1)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert_refused(["demo", "-o", tmp_path / "no" / "out"], capsys, "does not exist", code=1)
    assert not leftovers(tmp_path)


@pytest.mark.bad_input
def test_without_pytorch_one_line_names_the_extra(tmp_path, capsys, without_torch):
    out = tmp_path / "out"
    assert_refused(["demo", "-o", out], capsys, "pip install 'kmervae[train]'", code=1)
    assert not out.exists() and not leftovers(tmp_path)


def test_library_refuses_bad_parameters(tmp_path):
    from kmervae.demo.run import demo_options
    from kmervae.errors import KmervaeError

    with pytest.raises(KmervaeError, match="size"):
        build_demo_inputs(tmp_path / "x", size="huge")
    with pytest.raises(KmervaeError, match="epochs"):
        demo_options("small", 0, "cpu")
    assert not (tmp_path / "x").exists()
    assert demo_options("small", None, "cpu")["train"]["batch_size"] == 32
    assert demo_options("full", 7, "auto")["train"]["epochs"] == 7


# ------------------------------------------------------------------------- the whole demo
def _pipeline_ready() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        from kmervae.pipeline import run_pipeline  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _pipeline_ready(), reason="needs kmervae.pipeline and PyTorch")
def test_small_demo_end_to_end(tmp_path, capsys):
    from kmervae.cli import main

    out = tmp_path / "demo"
    code = main(["demo", "-o", str(out), "--size", "small", "--device", "cpu", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"open {out / 'report.html'}" in captured.out
    for name in (
        "inputs/A1.fa",
        "inputs/samples.tsv",
        "inputs/labels.tsv",
        "inputs/ATTRIBUTION.md",
        "train/model/config.json",
        "map/map.png",
        "map/coordinates.npy",
        "clusters/clusters.tsv",
        "quality.json",
        "report.html",
    ):
        assert (out / name).is_file(), name
    clustered = _read_tsv(out / "clusters" / "clusters.tsv")
    assert len(clustered) == len(_read_tsv(out / "inputs" / "samples.tsv"))
    assert json.loads((out / "quality.json").read_text())
    # the report's map is coloured by genus, every label column in its tooltips
    report = json.loads((out / "report.html.json").read_text())
    assert report["color"] == "genus" and report["maps"][0]["colour"] == "genus"
    assert report["labels"]["columns"] == list(LABEL_COLUMNS)
    # again without --force: refused, the demo left as it was
    assert main(["demo", "-o", str(out), "--size", "small", "-q"]) == 1
    assert "already exists" in capsys.readouterr().err
    _open_in_a_browser(out / "report.html", tmp_path / "chromium")


def _open_in_a_browser(report: Path, profile: Path) -> None:
    """The demo's report loads in headless Chromium, with its sections and figures."""
    if not (Path(__file__).resolve().parent / "browser.py").exists():
        return
    from browser import chromium, wait_for

    with chromium(profile) as driver:
        driver.get(report.as_uri())
        wait_for(driver, "return document.readyState === 'complete'", what="the report")
        headings = driver.execute_script(
            "return [...document.querySelectorAll('h2')].map(h => h.textContent.trim())"
        )
        for section in ("Map", "Clusters", "Sample comparison"):
            assert any(h.startswith(section) for h in headings), (section, headings)
        figures = driver.execute_script(
            "return document.querySelectorAll('img, canvas, svg').length"
        )
        assert figures >= 3
