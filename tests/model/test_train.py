"""Training: schedules, split, batch sources, determinism, resume, bad input."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from kmervae.cli import main
from kmervae.errors import InputError, KmervaeError
from kmervae.io.dataset import DatasetWriter, open_dataset
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import VAEConfig
from kmervae.model.data import ResidentBatches, StreamedBatches, random_split
from kmervae.model.files import load_model
from kmervae.model.schedules import PlateauState, cosine_lr, kl_weight, plateau_step
from kmervae.model.train import RuntimeOptions, TrainConfig, train_vae

LAYOUT = FeatureLayout((4, 3, 2, 1))
SMALL = VAEConfig(ks=(4, 3, 2, 1), hidden=(32, 16), latent=4)


def clustered_dataset(path, n=600, seed=0, layout=LAYOUT, nan_row=None):
    """Rows drawn around 4 compositions, each k-group a frequency vector."""
    rng = np.random.default_rng(seed)
    centres = [rng.dirichlet(np.ones(layout.n_features)) for _ in range(4)]
    rows = []
    for i in range(n):
        base = centres[i % 4] * rng.uniform(0.7, 1.3, layout.n_features)
        parts = []
        for k in layout.ks:
            g = base[layout.group_slice(k)]
            parts.append(g / g.sum())
        rows.append(np.concatenate(parts))
    feats = np.asarray(rows, np.float32)
    if nan_row is not None:
        feats[nan_row, 3] = np.nan
    with DatasetWriter(path, layout) as writer:
        writer.append(feats, np.full(n, 5000, np.int64), [f"c{i}" for i in range(n)])
        writer.close()
    return path


def quick(**changes):
    base = dict(
        epochs=4,
        batch_size=48,
        lr=3e-3,
        kl_warmup=2,
        fidelity_every=2,
        fidelity_pool=100,
        eval_train_rows=200,
    )
    base.update(changes)
    return TrainConfig(**base)


# -- schedules --------------------------------------------------------------------------
def test_kl_weight_ramps_linearly():
    assert [kl_weight(e, 5) for e in range(7)] == [0, 0.2, 0.4, 0.6, 0.8, 1, 1]
    assert kl_weight(0, 0) == 1.0


def test_cosine_warms_up_then_decays_to_floor():
    lrs = [cosine_lr(e, lr=1e-3, min_lr=1e-5, epochs=50, warmup_epochs=5) for e in range(50)]
    assert lrs[0] < lrs[4] < 1e-3 + 1e-12
    assert lrs[5] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in itertools.pairwise(lrs[5:]))


def test_plateau_ignores_warmup_and_respects_patience_and_floor():
    state = PlateauState(1e-3)
    # warm-up epochs with very low losses do not set the best value
    for epoch in range(3):
        state = plateau_step(
            state, 0.001, epoch, ignore_before=3, patience=2, factor=0.5, min_lr=2e-4
        )
    assert state == PlateauState(1e-3)
    losses = [10.0, 9.0, 9.5, 9.4, 9.3, 9.2, 9.2, 9.2, 9.2, 9.2, 9.2]
    lrs = []
    for epoch, loss in enumerate(losses, start=3):
        state = plateau_step(
            state, loss, epoch, ignore_before=3, patience=2, factor=0.5, min_lr=2e-4
        )
        lrs.append(state.lr)
    assert lrs[:4] == [1e-3] * 4 and lrs[4] == 5e-4
    assert min(lrs) == 2.5e-4 or min(lrs) == 2e-4
    assert all(lr >= 2e-4 for lr in lrs)


# -- data ----------------------------------------------------------------------------------
def test_split_is_seeded_random_and_disjoint():
    a, b = random_split(1000, 0.1, 7), random_split(1000, 0.1, 7)
    np.testing.assert_array_equal(a.validation, b.validation)
    assert len(a.validation) == 100 and len(a.train) == 900
    assert not set(a.train) & set(a.validation)
    # never "the last 10 %"
    assert a.validation.min() < 500
    assert not np.array_equal(random_split(1000, 0.1, 8).validation, a.validation)


@pytest.mark.parametrize("buffer_rows", [64, 150, 10_000])
def test_streamed_and_resident_batches_cover_each_row_once(tmp_path, buffer_rows):
    ds = open_dataset(clustered_dataset(tmp_path / "d", n=500))
    rows = random_split(500, 0.2, 1).train
    cols = LAYOUT.subset_columns(LAYOUT.ks)
    device = torch.device("cpu")
    for source in (
        ResidentBatches(ds, cols, rows, device),
        StreamedBatches(ds, cols, rows, device, chunk_rows=64, buffer_rows=buffer_rows),
    ):
        got = torch.cat(list(source.epoch(32, seed=3, drop_last=False))).numpy()
        assert got.shape == (len(rows), LAYOUT.n_features)
        expected = np.asarray(ds.features)[rows]
        order = np.lexsort(got.T[:5])
        np.testing.assert_array_equal(got[order], expected[np.lexsort(expected.T[:5])])
        again = torch.cat(list(source.epoch(32, seed=3, drop_last=False))).numpy()
        np.testing.assert_array_equal(got, again)
        other = torch.cat(list(source.epoch(32, seed=4, drop_last=False))).numpy()
        assert not np.array_equal(got, other)
        assert all(b.shape[0] == 32 for b in source.epoch(32, seed=3, drop_last=True))


# -- training ------------------------------------------------------------------------------
def test_training_learns_and_is_deterministic(tmp_path):
    data = clustered_dataset(tmp_path / "d")
    runs = []
    for name in ("a", "b"):
        summary = train_vae(
            data, tmp_path / name, SMALL, quick(epochs=6), runtime=RuntimeOptions(threads=1)
        )
        history = [
            json.loads(x) for x in (tmp_path / name / "history.jsonl").read_text().splitlines()
        ]
        runs.append(history)
        assert summary.best_epoch is not None and summary.best_epoch >= 3  # after the warm-up
    assert [h["val_loss"] for h in runs[0]] == [h["val_loss"] for h in runs[1]]
    # the same seed gives the same weights, to the bit
    states = [
        torch.load(tmp_path / name / "checkpoints/last.pt", weights_only=True)["model_state"]
        for name in ("a", "b")
    ]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    first, last = runs[0][0], runs[0][-1]
    assert last["val_recon"] < first["val_recon"]
    for key in (
        "train_loss",
        "train_loss_eval",
        "val_loss",
        "val_kl",
        "lr",
        "seconds",
        "samples_per_s",
        "epoch_samples_per_s",
    ):
        assert math.isfinite(last[key])
    assert set(last["val_mse_per_k"]) == {"4", "3", "2", "1"}
    assert "fidelity_spearman" in runs[0][1] and runs[0][1]["fidelity_pool"] == 60
    run = tmp_path / "a"
    for name in (
        "run.json",
        "training_curves.png",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "model/config.json",
        "model/model.safetensors",
        "model/README.md",
    ):
        assert (run / name).exists(), name
    model = load_model(run / "model")
    assert model.config == SMALL and model.decoder is not None
    card = json.loads((run / "model" / "card.json").read_text())
    assert card["training_data"]["n_rows"] == 600


def test_best_and_plateau_ignore_kl_warmup(tmp_path):
    data = clustered_dataset(tmp_path / "d")
    train_vae(
        data, tmp_path / "r", SMALL, quick(epochs=3, kl_warmup=3), runtime=RuntimeOptions(threads=1)
    )
    history = [json.loads(x) for x in (tmp_path / "r/history.jsonl").read_text().splitlines()]
    assert not any(h["best"] for h in history)  # all epochs were warm-up
    assert not (tmp_path / "r/checkpoints/best.pt").exists()
    assert (tmp_path / "r/model/model.safetensors").exists()  # published from last.pt


def test_resume_continues_the_same_history(tmp_path):
    data = clustered_dataset(tmp_path / "d")
    rt = RuntimeOptions(threads=1)
    train_vae(data, tmp_path / "full", SMALL, quick(epochs=5), runtime=rt)
    train_vae(data, tmp_path / "part", SMALL, quick(epochs=3), runtime=rt)
    # simulate a kill after the history line of epoch 4 was written but before its checkpoint,
    # with a half-written line at the end
    with open(tmp_path / "part/history.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 4, "val_loss": -1}) + "\n" + '{"epoch": 5, "val_')
    train_vae(data, tmp_path / "part", SMALL, quick(epochs=5), resume=True, runtime=rt)
    full = [json.loads(x) for x in (tmp_path / "full/history.jsonl").read_text().splitlines()]
    part = [json.loads(x) for x in (tmp_path / "part/history.jsonl").read_text().splitlines()]
    events = [h for h in part if "event" in h]
    epochs = [h for h in part if "epoch" in h]
    assert len(events) == 1 and events[0]["from_epoch"] == 4
    assert [h["epoch"] for h in epochs] == [1, 2, 3, 4, 5]
    assert [h["val_loss"] for h in epochs] == [h["val_loss"] for h in full]
    with pytest.raises(KmervaeError, match="different training config"):
        train_vae(data, tmp_path / "part", SMALL, quick(epochs=6, lr=1e-2), resume=True, runtime=rt)
    with pytest.raises(KmervaeError, match="different model config"):
        train_vae(
            data,
            tmp_path / "part",
            SMALL.replace(latent=5),
            quick(epochs=6),
            resume=True,
            runtime=rt,
        )


def test_streamed_training_matches_shapes_and_learns(tmp_path):
    data = clustered_dataset(tmp_path / "d", n=800)
    summary = train_vae(
        data,
        tmp_path / "r",
        SMALL,
        quick(epochs=4),
        runtime=RuntimeOptions(threads=1, placement="stream", memory_mb=1),
    )
    assert summary.epochs_run == 4
    history = [json.loads(x) for x in (tmp_path / "r/history.jsonl").read_text().splitlines()]
    assert history[-1]["val_recon"] < history[0]["val_recon"]


def test_bad_inputs(tmp_path):
    rt = RuntimeOptions(threads=1)
    data = clustered_dataset(tmp_path / "d")
    with pytest.raises(InputError, match="do not include the model's"):
        train_vae(data, tmp_path / "r1", VAEConfig(), quick(), runtime=rt)
    nan = clustered_dataset(tmp_path / "nan", nan_row=17)
    with pytest.raises(InputError, match=r"id 'c17'.*NaN"):
        train_vae(nan, tmp_path / "r2", SMALL, quick(), runtime=rt)
    with DatasetWriter(tmp_path / "empty", LAYOUT) as writer:
        writer.close()
    with pytest.raises(InputError, match="empty"):
        train_vae(tmp_path / "empty", tmp_path / "r3", SMALL, quick(), runtime=rt)
    with pytest.raises(InputError, match="smaller than one batch"):
        train_vae(data, tmp_path / "r4", SMALL, quick(batch_size=128), runtime=rt)
    with pytest.raises(KmervaeError, match="nothing to resume"):
        train_vae(data, tmp_path / "r5", SMALL, quick(), resume=True, runtime=rt)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", None])
def test_corrupt_or_foreign_checkpoint(tmp_path, content, capsys):
    data = clustered_dataset(tmp_path / "d")
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    if content is None:
        torch.save({"weights": torch.zeros(3)}, run / "checkpoints/last.pt")
    else:
        (run / "checkpoints/last.pt").write_bytes(content)
    code = main(
        [
            "train",
            str(data),
            "-o",
            str(run),
            "--resume",
            "--ks",
            "4,3,2,1",
            "--hidden",
            "32,16",
            "--latent",
            "4",
            "-q",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "checkpoint" in err[0]


def test_cli_train_and_resume(tmp_path, capsys):
    data = clustered_dataset(tmp_path / "d")
    run = tmp_path / "run"
    args = [
        "train",
        str(data),
        "-o",
        str(run),
        "--ks",
        "4,3,2,1",
        "--hidden",
        "32,16",
        "--latent",
        "4",
        "--batch-size",
        "48",
        "--kl-warmup",
        "1",
        "--fidelity-every",
        "0",
        "-t",
        "1",
        "-q",
    ]
    assert main([*args, "--epochs", "2"]) == 0
    assert main([*args, "--epochs", "2"]) == 1  # exists
    assert "--resume" in capsys.readouterr().err
    # resume needs no flags again: the stored config is used
    assert main(["train", str(data), "-o", str(run), "--resume", "--epochs", "3", "-q"]) == 0
    epochs = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [h.get("epoch") for h in epochs if "epoch" in h] == [1, 2, 3]
    log = (run / "kmervae.log").read_text()
    assert log.count("command: kmervae train") == 2
    assert main([*args, "--epochs", "1", "--force"]) == 0


def test_killed_run_resumes_with_unbroken_history(tmp_path):
    """A real kill (SIGKILL) at an arbitrary moment, then --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = clustered_dataset(tmp_path / "d", n=600)
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "kmervae",
        "train",
        str(data),
        "-o",
        str(run),
        "--ks",
        "4,3,2,1",
        "--hidden",
        "32,16",
        "--latent",
        "4",
        "--batch-size",
        "16",
        "--kl-warmup",
        "1",
        "--fidelity-every",
        "0",
        "-t",
        "1",
        "-q",
    ]
    proc = subprocess.Popen([*args, "--epochs", "400"])
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "checkpoints" / "last.pt").exists():
        time.sleep(0.05)
    time.sleep(0.7)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [
        json.loads(x)["epoch"]
        for x in (run / "history.jsonl").read_text().splitlines()
        if x.startswith('{"epoch"')
    ]
    assert 1 <= len(done) < 400
    target = len(done) + 2
    resumed = subprocess.run(
        [*args[:7], "--resume", "--epochs", str(target), "-q"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in rows if "epoch" in r]
    assert epochs == list(range(1, target + 1))
    assert sum("event" in r for r in rows) == 1
    assert not list((run / "checkpoints").glob(".*"))  # no temporary checkpoint left behind
