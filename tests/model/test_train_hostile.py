"""``kmervae train`` against hostile input, full disks and interruptions.

Every refusal is one line, comes before anything is written, and leaves an earlier run that
``--force`` was asked to replace as it was. A run stopped by a signal (or killed) and then
resumed ends with the weights and history of a run that was never stopped.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from embed_factory import random_profiles, write_profiles
from hostile import (
    assert_clean,
    assert_refused,
    kmervae_process,
    leftovers,
    read_only_folder,
    run_cli,
    small_disk,
)
from safetensors.torch import load_file

import kmervae.model.train as train_module
from kmervae.cli import main
from kmervae.io.dataset import DatasetWriter
from kmervae.kmers.layout import FeatureLayout

LAYOUT = FeatureLayout((4, 3, 2, 1))
ROWS, EPOCHS = 320, 6
ARCH = ["--ks", "4,3,2,1", "--hidden", "32,16", "--latent", "4"]
RECIPE = [
    *("--batch-size", "32", "--kl-warmup", "1"),
    *("--fidelity-every", "3", "--fidelity-pool", "20"),
    *("-t", "1", "-q"),
]
TIMING = {"seconds", "train_seconds", "samples_per_s", "epoch_samples_per_s"}


def train_argv(data: Path, run: Path, *extra: object) -> list[str]:
    """``kmervae train`` of the reference run; ``extra`` options come last and win."""
    return ["train", str(data), "-o", str(run), *ARCH, *RECIPE, "--epochs", str(EPOCHS)] + [
        str(x) for x in extra
    ]


def resume_argv(data: Path, run: Path) -> list[str]:
    return ["train", str(data), "-o", str(run), "--resume", "-t", "1", "-q"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def outcome(run: Path) -> tuple[dict[str, torch.Tensor], list[dict], dict[str, torch.Tensor]]:
    """Final weights (last checkpoint and published model) and the epoch history of a run,
    without wall-clock fields."""
    last = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    epochs = [{k: v for k, v in r.items() if k not in TIMING} for r in rows if "epoch" in r]
    return last["model_state"], epochs, load_file(run / "model" / "model.safetensors")


def assert_same_outcome(run: Path, reference: Path) -> None:
    weights, history, published = outcome(run)
    ref_weights, ref_history, ref_published = outcome(reference)
    assert weights.keys() == ref_weights.keys()
    for key, value in ref_weights.items():
        assert torch.equal(weights[key], value), key
    assert published.keys() == ref_published.keys()
    for key, value in ref_published.items():
        assert torch.equal(published[key], value), key
    assert history == ref_history


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train-data")
    return write_profiles(folder / "profiles", random_profiles(ROWS, LAYOUT, seed=3))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> Path:
    """A finished run, never interrupted."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(train_argv(data, run)) == 0
    return run


@pytest.fixture
def old_run(tmp_path, reference) -> Path:
    """A copy of a finished run, to be replaced with --force."""
    run = tmp_path / "out" / "run"
    shutil.copytree(reference, run)
    return run


# -- the bad-input catalogue ---------------------------------------------------------------
def _nan_dataset(tmp: Path) -> Path:
    x = random_profiles(ROWS, LAYOUT, seed=3)
    x[7, 3] = np.nan
    return write_profiles(tmp / "nan", x)


def _empty_dataset(tmp: Path) -> Path:
    with DatasetWriter(tmp / "empty", LAYOUT) as writer:
        return writer.close()


def _fasta(tmp: Path) -> Path:
    (tmp / "contigs.fa").write_text(">c1\nACGTACGT\n")
    return tmp / "contigs.fa"


def _folder(tmp: Path) -> Path:
    (tmp / "folder").mkdir()
    (tmp / "folder" / "notes.txt").write_text("x")
    return tmp / "folder"


def _other_layout(tmp: Path) -> Path:
    layout = FeatureLayout((3, 2, 1))
    return write_profiles(tmp / "k321", random_profiles(100, layout), layout=layout)


# name -> (dataset (None: the good one), extra options, needles of the error line)
BAD_INPUTS = {
    "missing-dataset": (lambda t: t / "missing", [], ["missing"]),
    "folder-not-a-dataset": (_folder, [], ["folder", "manifest.json"]),
    "empty-dataset": (_empty_dataset, [], ["empty"]),
    "fasta-as-dataset": (_fasta, [], ["contigs.fa"]),
    "nan-row": (_nan_dataset, [], ["nan", "c7"]),
    "ks-not-in-dataset": (None, ["--ks", "6,5,4"], ["(ks)", "6, 5, 4"]),
    "validation-lacks-ks": (None, ["--validation", "{k321}"], ["k321", "(ks)"]),
    "missing-validation": (None, ["--validation", "{tmp}/nowhere"], ["nowhere"]),
    "device-cuda-7": (None, ["--device", "cuda:7"], ["cuda:7"]),
    "cuda-graphs-on-cpu": (None, ["--device", "cpu", "--compile", "reduce-overhead"], ["cuda"]),
    "batch-larger-than-data": (None, ["--batch-size", "400"], ["batch_size", "288"]),
    "validation-smaller-than-a-batch": (None, ["--val-fraction", "0.05"], ["validation", "16"]),
    "min-lr-above-lr": (None, ["--lr", "1e-3", "--min-lr", "1e-2"], ["min_lr"]),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_old_run_survives(case, tmp_path, data, old_run, capsys):
    make, extra, needles = BAD_INPUTS[case]
    dataset = data if make is None else make(tmp_path)
    k321 = _other_layout(tmp_path) if "{k321}" in extra else None
    extra = [str(x).format(tmp=tmp_path, k321=k321) for x in extra]
    before = snapshot(old_run)
    assert_refused(train_argv(dataset, old_run, "--force", *extra), capsys, *needles, code=1)
    assert snapshot(old_run) == before
    assert_clean(tmp_path)


# option -> values out of its range
OUT_OF_RANGE = [
    ("--epochs", "0"),
    ("--batch-size", "0"),
    ("--lr", "0"),
    ("--lr", "nan"),
    ("--factor", "2"),
    ("--factor", "0"),
    ("--min-lr", "-0.001"),
    ("--patience", "-1"),
    ("--kl-warmup", "-1"),
    ("--lr-warmup", "-1"),
    ("--val-fraction", "1"),
    ("--val-fraction", "0"),
    ("--early-stopping", "-1"),
    ("--seed", "-1"),
    ("--seed", "4294967296"),
    ("--fidelity-every", "-1"),
    ("--fidelity-pool", "1"),
    ("--latent", "0"),
    ("--hidden", "32,0"),
    ("--beta", "-0.1"),
    ("--dropout", "1"),
    ("--distance-weight", "-1"),
    ("--distance-locality", "0"),
    ("--ks", "7,1"),
    ("--ks", "4,4"),
    ("--threads", "-1"),
    ("--memory", "0"),
    ("--device", "tpu"),
    ("--device", "cuda:x"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize(("option", "value"), OUT_OF_RANGE)
def test_out_of_range_option_is_refused(option, value, data, old_run, capsys):
    before = snapshot(old_run)
    assert_refused(train_argv(data, old_run, "--force", option, value), capsys, option, code=2)
    assert snapshot(old_run) == before


@pytest.mark.bad_input
def test_existing_run_needs_force(data, old_run, capsys):
    before = snapshot(old_run)
    assert_refused(train_argv(data, old_run), capsys, str(old_run), "--force", "--resume")
    assert snapshot(old_run) == before


@pytest.mark.bad_input
def test_force_replaces_only_run_folders(tmp_path, data, capsys):
    folder = _folder(tmp_path)
    assert_refused(train_argv(data, folder, "--force"), capsys, "not a training run")
    assert (folder / "notes.txt").read_text() == "x"
    (tmp_path / "file").write_text("x")
    assert_refused(train_argv(data, tmp_path / "file", "--force"), capsys, "not a run folder")


@pytest.mark.bad_input
def test_missing_or_read_only_output_folder(tmp_path, data, capsys):
    assert_refused(train_argv(data, tmp_path / "no" / "run"), capsys, "does not exist")
    with read_only_folder(tmp_path) as folder:
        assert_refused(train_argv(data, folder / "run"), capsys, str(folder), "not writable")


@pytest.mark.bad_input
def test_resume_without_a_run(tmp_path, data, capsys):
    assert_refused(resume_argv(data, tmp_path / "run"), capsys, "nothing to resume")


@pytest.mark.bad_input
@pytest.mark.parametrize("change", ["features", "validation"])
def test_resume_refuses_other_data(change, tmp_path, data, old_run, capsys):
    before = snapshot(old_run)
    argv = resume_argv(data, old_run)
    if change == "features":  # the same ids and row count, other profiles
        argv[1] = str(write_profiles(tmp_path / "rewritten", random_profiles(ROWS, LAYOUT, 4)))
        assert_refused(
            argv, capsys, "rewritten", "its features (sampled SHA-256) changed", "same data"
        )
    else:
        assert_refused([*argv, "--validation", str(data)], capsys, "without a validation dataset")
    assert snapshot(old_run) == before
    assert_clean(tmp_path)


def test_resume_accepts_the_same_data_moved(tmp_path, data, old_run, reference, capsys):
    moved = shutil.copytree(data, tmp_path / "moved")
    code, err = run_cli(resume_argv(moved, old_run), capsys)
    assert code == 0, err
    assert_same_outcome(old_run, reference)


@pytest.mark.bad_input
def test_resume_with_unreadable_run_record(data, old_run, capsys):
    (old_run / "run.json").write_text("{not json")
    assert_refused(resume_argv(data, old_run), capsys, "run.json")


def _pages(folder: Path) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


@pytest.mark.bad_input
@pytest.mark.parametrize("earlier_run", [False, True])
def test_full_disk_is_one_line_and_leaves_nothing(earlier_run, tmp_path, data, reference, capsys):
    """The disk fills at the first checkpoint: one line naming it; nothing new is left."""
    size = 64 * 1024 + (_pages(reference) if earlier_run else 0)
    with small_disk(tmp_path, f"{size // 1024}k") as disk:
        run = disk / "run"
        if earlier_run:
            shutil.copytree(reference, run)
        before = snapshot(run) if earlier_run else None
        assert_refused(train_argv(data, run, "--force"), capsys, "last.pt", "no space left")
        assert_clean(disk)
        if earlier_run:
            assert snapshot(run) == before
        else:
            assert not run.exists()


@pytest.mark.bad_input
def test_failure_after_a_checkpoint_keeps_a_resumable_run(
    tmp_path, data, reference, monkeypatch, capsys
):
    """A full disk at the second epoch's last checkpoint: the run keeps the first, says so in
    its one line and its log, and --resume ends where an uninterrupted run does."""
    real, calls = train_module.save_checkpoint, []

    def failing(path: Path, payload: dict) -> None:
        calls.append(path.name)
        if len(calls) == 3:  # last.pt of epoch 2 (epoch 1 saves only last.pt: KL warm-up)
            raise OSError(28, "No space left on device", str(path))
        real(path, payload)

    run = tmp_path / "run"
    monkeypatch.setattr(train_module, "save_checkpoint", failing)
    needles = ("no space left", "epoch 1", "resume continues")
    line = assert_refused(train_argv(data, run), capsys, *needles)
    assert line in (run / "kmervae.log").read_text()
    assert_clean(tmp_path)
    monkeypatch.setattr(train_module, "save_checkpoint", real)
    code, err = run_cli(resume_argv(data, run), capsys)
    assert code == 0, err
    assert_same_outcome(run, reference)


# -- interruptions ---------------------------------------------------------------------------
STOPS = {
    signal.SIGINT: (130, "kmervae train: interrupted"),
    signal.SIGTERM: (143, "kmervae train: terminated (SIGTERM)"),
}


def _signal_at_checkpoint(monkeypatch, signum: int, call: int, before_writing: bool) -> None:
    """Deliver ``signum`` to this process at the ``call``-th checkpoint write."""
    real, calls = train_module.save_checkpoint, []

    def interrupted(path: Path, payload: dict) -> None:
        calls.append(path)
        if len(calls) == call and before_writing:
            signal.raise_signal(signum)
        real(path, payload)
        if len(calls) == call:
            signal.raise_signal(signum)

    monkeypatch.setattr(train_module, "save_checkpoint", interrupted)


@pytest.mark.kill_point
@pytest.mark.parametrize("signum", list(STOPS), ids=["SIGINT", "SIGTERM"])
def test_signal_before_the_first_checkpoint_leaves_the_old_run(
    signum, tmp_path, data, old_run, monkeypatch, capsys
):
    before = snapshot(old_run)
    _signal_at_checkpoint(monkeypatch, signum, call=1, before_writing=True)
    code, err = run_cli(train_argv(data, old_run, "--force"), capsys)
    assert (code, err.strip()) == STOPS[signum]
    assert snapshot(old_run) == before
    assert_clean(tmp_path)


@pytest.mark.kill_point
@pytest.mark.parametrize(
    ("signum", "call"),
    [(signal.SIGINT, 2), (signal.SIGTERM, 3)],
    ids=["SIGINT-between-best-and-last", "SIGTERM-after-last"],
)
def test_signal_after_a_checkpoint_leaves_a_resumable_run(
    signum, call, tmp_path, data, reference, monkeypatch, capsys
):
    run = tmp_path / "run"
    _signal_at_checkpoint(monkeypatch, signum, call=call, before_writing=False)
    code, err = run_cli(train_argv(data, run), capsys)
    assert (code, err.strip()) == STOPS[signum]
    assert STOPS[signum][1] in (run / "kmervae.log").read_text()
    assert_clean(tmp_path)
    monkeypatch.undo()
    code, err = run_cli(resume_argv(data, run), capsys)
    assert code == 0, err
    assert_same_outcome(run, reference)


@pytest.mark.kill_point
def test_sigkill_at_a_random_point_then_resume(tmp_path, data, reference, capsys):
    run = tmp_path / "run"
    delay = random.uniform(0.0, 0.8)
    proc = kmervae_process(train_argv(data, run))
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    time.sleep(delay)
    assert proc.poll() is None, f"the run ended before the kill ({delay:.2f} s)"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not [p for p in leftovers(tmp_path) if p.parent == tmp_path]  # the run is in place
    code, err = run_cli(resume_argv(data, run), capsys)
    assert code == 0, f"{err} (killed {delay:.2f} s after the first checkpoint)"
    assert_same_outcome(run, reference)
    assert_clean(tmp_path)
