"""``kmervae pipeline``: every stage's output from two tiny FASTA files, a rerun that skips
what is up to date, redoing from a changed option, output or FASTA, and refusals before any
stage runs."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import random_fasta
from hostile import assert_clean, interrupt

from kmervae.cli import main
from kmervae.pipeline.config import check_options, read_config, stage_parsers

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"

#: a tiny model and tiny stages, so the whole pipeline runs in seconds
CONFIG = """
[train]
epochs = 2
latent = 4
hidden = [32]
batch_size = 16
device = "cpu"

[knn]
neighbours = 8

[map]
perplexity = 4
n_iter = 60
early_iter = 30
dpi = 30

[evaluate]
baseline = "tetra"
pool_size = 20
queries = 10
neighbours = 5
bootstrap = 10

[compare]
dpi = 30
format = "png"
bins = 20
"""


def _pipeline(root: Path, out: Path, *extra: str, config: Path | None = None) -> list[str]:
    return [
        "pipeline",
        str(root / "a.fa"),
        str(root / "b.fa"),
        "-o",
        str(out),
        "--config",
        str(config or root / "pipeline.toml"),
        "--labels",
        str(root / "labels.tsv"),
        "--samples",
        str(root / "samples.tsv"),
        "--a",
        "A",
        "--b",
        "B",
        "-t",
        "1",
        *extra,
    ]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _states(err: str) -> dict[str, str]:
    """stage -> 'skipped', 'redoing: WHY' or 'run', from the progress lines."""
    found: dict[str, str] = {}
    for line in err.splitlines():
        match = re.match(r"pipeline: \[\d+/\d+\] (\w+)(: | \.\.\. )(.*)", line)
        if not match:
            continue
        name, _sep, rest = match.groups()
        if rest == "done, skipped":
            found[name] = "skipped"
        elif rest.startswith("redoing: "):
            found[name] = rest
        else:
            found.setdefault(name, "run")
    return found


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished pipeline: (root with the inputs, its folder, the first run's stderr)."""
    root = tmp_path_factory.mktemp("pipeline")
    random_fasta(root / "a.fa", n=100, seed=1, min_len=1000, max_len=3000)
    random_fasta(root / "b.fa", n=100, seed=2, min_len=1000, max_len=3000)
    (root / "pipeline.toml").write_text(CONFIG)
    ids = [f"{stem}_contig_{i}" for stem in ("a", "b") for i in range(100)]
    (root / "labels.tsv").write_text(
        "id\tgenome\n" + "".join(f"{i}\t{i.split('_')[0]}\n" for i in ids)
    )
    (root / "samples.tsv").write_text(
        "contig\tsample\tgroup\n"
        + "".join(f"{i}\t{i.split('_')[0]}\t{'A' if i[0] == 'a' else 'B'}\n" for i in ids)
    )
    out = root / "out"
    assert main(_pipeline(root, out, "-q")) == 0
    return root, out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "kmervae.log"
    }


def test_a_full_run_writes_every_output(done):
    _root, out = done
    for name in ("profiles", "train/model", "embeddings", "store", "graph", "clusters", "map"):
        assert (out / name).is_dir(), name
    for name in ("quality.json", "quality.md", "taxonomy.json", "compare/overlay.png"):
        assert (out / name).is_file(), name
    quality = json.loads((out / "quality.json").read_text())
    assert [r["representation"]["name"] for r in quality["results"]][1] == "tetra"
    assert all("validation part of run" in r["held_out"] for r in quality["results"])
    state = json.loads((out / "pipeline.json").read_text())
    assert all(record["status"] == "done" for record in state["stages"].values())
    assert state["stages"]["profile"]["commands"][0][-2:] == ["--prefix-ids", "-q"] or (
        "--prefix-ids" in state["stages"]["profile"]["commands"][0]
    )
    assert state["stages"]["map"]["commands"][0][:4] == ["map", "OUT/embeddings", "-o", "OUT/map"]
    assert (out / "kmervae.log").is_file()
    report = state["stages"]["report"]["commands"][0]
    assert report[report.index("--labels") + 1] == str(_root / "labels.tsv")
    assert "--color" not in report  # no genus column: the labels' first column
    assert json.loads((out / "report.html.json").read_text())["color"] == "cluster"
    ids = (out / "profiles" / "ids.txt").read_text().split()
    assert ids[0] == "a_contig_0" and ids[-1] == "b_contig_99"


def test_the_report_gets_the_labels_unless_they_need_the_catalog(tmp_path):
    from kmervae.pipeline.stages import Request, plan_stages

    labels = tmp_path / "labels.tsv"
    labels.write_text("contig\tgenome\tgenus\na_contig_0\tg\tG\n")

    def report(**evaluate: str) -> tuple[list[str], dict[str, Path]]:
        request = Request((tmp_path / "a.fa",), tmp_path / "out", None, {"evaluate": evaluate}, 4)
        stages = plan_stages(request, stage_parsers(), "options")
        stage = next(s for s in stages if s.name == "report")
        return stage.commands[0], stage.inputs

    command, inputs = report(labels=str(labels))
    assert command[command.index("--labels") + 1] == str(labels)
    assert command[command.index("--color") + 1] == "genus"
    assert inputs["labels"] == labels
    command, inputs = report(labels=str(labels), catalog=str(tmp_path / "catalog.tsv"))
    assert "--labels" not in command and "--color" not in command and "labels" not in inputs


def test_a_rerun_skips_every_stage_and_changes_nothing(done, capsys):
    root, out = done
    before = _files(out)
    started = time.perf_counter()
    code, stdout, err = _run(_pipeline(root, out), capsys)
    seconds = time.perf_counter() - started
    assert code == 0, err
    states = _states(err)
    assert states and set(states.values()) == {"skipped"}, err
    assert "train" in states and "compare" in states
    assert seconds < 10
    assert _files(out) == before
    assert "pipeline: outputs in" in stdout and "profiles/" in stdout and "total" in stdout


def test_an_option_redoes_its_stage_and_those_after(done, tmp_path, capsys):
    root, out = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    config = tmp_path / "pipeline.toml"
    config.write_text(CONFIG.replace("bins = 20", "bins = 25"))
    code, _, err = _run(_pipeline(root, copy, config=config), capsys)
    assert code == 0, err
    states = _states(err)
    assert states["compare"] == "redoing: options changed", err
    assert {states[s] for s in ("profile", "train", "embed", "map", "evaluate")} == {"skipped"}
    manifest = json.loads((copy / "compare" / "manifest.json").read_text())
    assert "25" in manifest["provenance"]["command"]


def test_killed_mid_stage_then_rerun_equals_a_clean_run(done, tmp_path, capsys):
    root, out = done
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "map" / "manifest.json").write_text("{")  # a damaged output is redone
    code, err = interrupt(_pipeline(root, copy), signal.SIGTERM, 0.2, started=copy / "map")
    assert code == 143, err
    assert "kmervae pipeline: terminated (SIGTERM)" in err
    assert re.search(r"pipeline: \[7/\d+\] map: redoing: output incomplete", err), err
    assert_clean(copy)
    state = json.loads((copy / "pipeline.json").read_text())
    assert state["stages"]["map"]["status"] == "started"
    code, _, err = _run(_pipeline(root, copy), capsys)
    assert code == 0, err
    states = _states(err)
    assert states["map"] == "redoing: output incomplete (interrupted)", err
    assert states["compare"].startswith("redoing: its map changed"), err
    assert {states[s] for s in ("profile", "train", "cluster", "evaluate")} == {"skipped"}
    for name in ("clusters/clusters.tsv", "map/map.tsv"):
        assert (copy / name).read_bytes() == (out / name).read_bytes(), name
    np.testing.assert_array_equal(
        np.load(copy / "map" / "coordinates.npy"), np.load(out / "map" / "coordinates.npy")
    )


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[train]\nepoch = 3\n", "[train] no option 'epoch' (known: "),
        ("[training]\nepochs = 3\n", "no stage [training]"),
        ("epochs = 3\n", "'epochs' outside a section"),
        ("[knn]\noutput = 'x'\n", "[knn] 'output' is set by the pipeline itself"),
        ("[train]\nepochs = 0\n", "--epochs"),
        ("[evaluate]\nbaseline = 'pca'\n", "baseline 'pca' is not a baseline"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_a_bad_config_fails_in_one_line_and_creates_nothing(tmp_path, capsys, toml, needle):
    random_fasta(tmp_path / "a.fa", n=3, seed=1)
    config = tmp_path / "pipeline.toml"
    config.write_text(toml)
    out = tmp_path / "out"
    code, _, err = _run(
        ["pipeline", str(tmp_path / "a.fa"), "-o", str(out), "--config", str(config)], capsys
    )
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kmervae pipeline: error: "), err
    assert needle in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.bad_input
def test_a_model_of_another_layout_fails_before_any_stage(tmp_path, capsys):
    random_fasta(tmp_path / "a.fa", n=3, seed=1)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "format": "kmervae-model",
                "schema_version": 1,
                "kind": "pca",
                "model": {"kind": "pca", "ks": [5, 4], "latent": 2},
            }
        )
    )
    np.savez(model / "pca.npz", mean=np.zeros(2772), components=np.zeros((2, 2772)))
    (model / "card.json").write_text("{}")
    out = tmp_path / "out"
    code, _, err = _run(
        ["pipeline", str(tmp_path / "a.fa"), "-o", str(out), "--model", str(model)], capsys
    )
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kmervae pipeline: error: "), err
    assert str(model) in lines[0]
    assert not out.exists()


@pytest.mark.bad_input
def test_missing_inputs_and_a_file_as_output_are_refused(tmp_path, capsys):
    random_fasta(tmp_path / "a.fa", n=3, seed=1)
    fasta = str(tmp_path / "a.fa")
    (tmp_path / "file").write_text("x")
    cases = [
        ([str(tmp_path / "none.fa"), "-o", str(tmp_path / "o")], "none.fa: no such FASTA"),
        ([fasta, "-o", str(tmp_path / "file")], "exists and is not a folder"),
        ([fasta, "-o", str(tmp_path / "o"), "--labels", "no.tsv"], "no.tsv: no such file"),
        ([fasta, "-o", str(tmp_path / "o"), "--samples", "s.tsv"], "--a and --b go together"),
        ([fasta, "-o", str(tmp_path / "o"), "--model", "nomodel"], "nomodel: no such model"),
    ]
    for argv, needle in cases:
        code, _, err = _run(["pipeline", *argv], capsys)
        assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_the_toml_example_of_the_docs_is_valid(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"example{number}.toml"
        path.write_text(block)
        check_options(read_config(path), stage_parsers(), str(path))


def test_a_changed_fasta_redoes_every_stage(done, capsys):
    """Last: it changes the module's FASTA file, which the tests above read."""
    root, out = done
    with open(root / "a.fa", "a") as fh:
        fh.write(">extra\n" + "ACGT" * 400 + "\n")
    code, _, err = _run(_pipeline(root, out), capsys)
    assert code == 0, err
    states = _states(err)
    assert states["profile"] == "redoing: its FASTA 1 changed", err
    assert states["train"] == "redoing: its profiles changed", err
    assert all(state.startswith("redoing") for state in states.values()), err
    assert "a_extra" in (out / "profiles" / "ids.txt").read_text()


@pytest.mark.bad_input
def test_without_pytorch_and_without_a_model_one_line_names_the_extra(
    tmp_path, capsys, without_torch
):
    random_fasta(tmp_path / "a.fa", n=3, seed=1)
    out = tmp_path / "out"
    code, _, err = _run(["pipeline", str(tmp_path / "a.fa"), "-o", str(out)], capsys)
    assert code == 1
    assert err == (
        "kmervae pipeline: error: training (the pipeline without --model) needs PyTorch: "
        "pip install 'kmervae[train]'\n"
    )
    assert not out.exists()
