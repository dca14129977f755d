"""What runs, models and embeddings record: one dataset record, epochs counted from 1 (old
records still read), and output files with the usual umask-respecting mode."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from embed_factory import SMALL, random_profiles, small_encoder, write_profiles

from kmervae.io.atomic import atomic_file, default_file_mode
from kmervae.io.dataset import (
    DATASET_RECORD_KEYS,
    dataset_record,
    open_dataset,
    read_dataset_record,
)
from kmervae.io.embeddings import open_embeddings
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import RuntimeOptions, TrainConfig
from kmervae.model.embed import embed_profiles
from kmervae.model.files import save_model
from kmervae.model.run_folder import history_from_one
from kmervae.model.train import train_vae
from kmervae.provenance import file_sha256, sampled_sha256
from kmervae.viz.curves import plot_training_curves

RECIPE = dict(batch_size=24, lr=3e-3, kl_warmup=1, fidelity_every=2, fidelity_pool=20)
RUNTIME = RuntimeOptions(threads=1, device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("records")
    return write_profiles(folder / "profiles", random_profiles(256, SMALL.layout, seed=3))


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
        for p in folder.rglob("*")
        if p.is_file()
    }


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# -- file modes ------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_model_folder_files_respect_the_umask(tmp_path, mask):
    with umask(mask):
        assert default_file_mode() == 0o666 & ~mask
        save_model(small_encoder(), tmp_path / "model")
    found = modes(tmp_path / "model")
    assert "model.safetensors" in found and "config.json" in found
    assert found == dict.fromkeys(found, 0o666 & ~mask)


def test_private_temporaries_get_the_usual_mode(tmp_path):
    """A writer that makes its file 0600 (tempfile.mkstemp does) still gives a 0644 output."""
    with umask(0o022):
        with atomic_file(tmp_path / "out.bin") as tmp:
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
            os.write(fd, b"x")
            os.close(fd)
        assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644


def test_a_run_folder_has_no_private_files(tmp_path, data):
    with umask(0o022):
        train_vae(data, tmp_path / "run", SMALL, TrainConfig(epochs=1, **RECIPE), runtime=RUNTIME)
    assert set(modes(tmp_path / "run").values()) == {0o644}


# -- the dataset record ------------------------------------------------------------------------
def test_dataset_record_of_native_and_legacy_datasets(tmp_path):
    layout = FeatureLayout((5, 4, 3, 2, 1))  # a layout legacy files have
    x = random_profiles(20, layout, seed=1)
    native = open_dataset(write_profiles(tmp_path / "native", x, layout=layout))
    npy = write_profiles(tmp_path / "legacy", x, layout=layout, fmt="legacy")
    ids = npy.with_suffix(".txt")
    text = ids.read_bytes()
    ids.with_suffix(".txt.gz").write_bytes(gzip.compress(text))
    ids.unlink()
    legacy = open_dataset(npy)
    for ds in (native, legacy):
        record = dataset_record(ds)
        assert tuple(record) == DATASET_RECORD_KEYS
        assert record["path"] == str(Path(ds.path).resolve())
        assert record["n_rows"] == 20 and record["dtype"] == "float32"
        # the checksum of the ids text, the same whether the ids are compressed or not
        assert record["ids_sha256"] == hashlib.sha256(text).hexdigest()
        assert record["features_sha256"] is None and record["features_sampled_sha256"] is None
        sampled = dataset_record(ds, features_sha256="f" * 64, sample_features=True)
        assert sampled["features_sha256"] == "f" * 64
        assert sampled["features_sampled_sha256"] == sampled_sha256(ds.data_file)
    assert dataset_record(native)["kind"] == "native"
    assert dataset_record(native)["sources"] == ["a", "b"]
    assert dataset_record(legacy)["kind"] == "legacy"
    assert dataset_record(legacy)["ids_path"].endswith("legacy.txt.gz")


def test_records_of_earlier_versions_are_read():
    run = {  # run.json and checkpoints
        "path": "/d",
        "kind": "legacy",
        "n_rows": 5,
        "ids_sha256": None,
        "checksums": {"features (sampled SHA-256)": "s1", "ids (SHA-256)": "i1"},
        "validation": {"path": "/v", "n_rows": 2, "checksums": {"ids (SHA-256)": "i2"}},
    }
    read = read_dataset_record(run)
    assert read["ids_sha256"] == "i1" and read["features_sampled_sha256"] == "s1"
    assert "checksums" not in read and read["validation"]["ids_sha256"] == "i2"
    embedded = read_dataset_record({"path": "/d.npy", "kind": "legacy", "npy_sha256": "n1"})
    assert embedded["features_sha256"] == "n1" and "npy_sha256" not in embedded
    concatenated = read_dataset_record({"path": "/d", "format": "native", "features_sha256": "f"})
    assert concatenated["kind"] == "native" and concatenated["features_sha256"] == "f"
    assert read_dataset_record(None) == {} and read_dataset_record("x") == {}
    assert read_dataset_record({"extra": 1}) == {"extra": 1}


def test_every_output_records_the_dataset_the_same_way(tmp_path, data):
    run = tmp_path / "run"
    train_vae(data, run, SMALL, TrainConfig(epochs=2, **RECIPE), runtime=RUNTIME)
    embed_profiles(run / "model", data, tmp_path / "emb", threads=1, device="cpu")
    ds = open_dataset(data)
    records = {
        "run.json": json.loads((run / "run.json").read_text())["dataset"],
        "card": json.loads((run / "model" / "card.json").read_text())["training_data"],
        "checkpoint": torch.load(run / "checkpoints/last.pt", weights_only=True)["dataset"],
        "embeddings": open_embeddings(tmp_path / "emb").manifest["dataset"],
    }
    for where, record in records.items():
        assert set(DATASET_RECORD_KEYS) <= set(record), where
        assert record["path"] == str(Path(data).resolve()), where
        assert record["ids_sha256"] == ds.manifest["ids_sha256"], where
    assert records["card"]["validation"] is None  # a seeded split of the training data
    assert records["run.json"]["features_sampled_sha256"] == sampled_sha256(ds.data_file)
    assert records["embeddings"]["features_sha256"] == file_sha256(ds.data_file)


# -- epochs counted from 1 ---------------------------------------------------------------------
def test_history_from_one():
    old = [{"epoch": 0, "val_loss": 3}, {"event": "resume", "from_epoch": 1}, {"epoch": 1}]
    assert history_from_one(old) == [
        {"epoch": 1, "val_loss": 3},
        {"event": "resume", "from_epoch": 2},
        {"epoch": 2},
    ]
    assert old[0]["epoch"] == 0  # a copy
    new = [{"epoch": 1}, {"event": "resume", "from_epoch": 2}, {"epoch": 2}]
    assert history_from_one(new) is new
    assert history_from_one([]) == []


def test_curves_of_an_old_history(tmp_path):
    rows = [{"epoch": e, "val_loss": 2.0 - e / 10, "lr": 1e-3} for e in range(3)]
    plot_training_curves(rows, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def _as_written_before(run: Path) -> None:
    """Rewrite a run as kmervae wrote it when epochs were counted from 0 (checkpoint schema 1,
    0-based history, dataset checksums in a ``checksums`` mapping)."""

    def old_dataset(record: dict) -> dict:
        out = {k: v for k, v in record.items() if k in ("path", "kind", "n_rows", "layout")}
        out["ids_sha256"] = record["ids_sha256"]
        out["checksums"] = {
            "features (sampled SHA-256)": record["features_sampled_sha256"],
            "ids (SHA-256)": record["ids_sha256"],
        }
        return out

    for name in ("last.pt", "best.pt"):
        path = run / "checkpoints" / name
        if not path.exists():
            continue
        ckpt = torch.load(path, weights_only=True)
        ckpt["schema_version"] = 1
        ckpt["epoch"] -= 1
        ckpt["best_epoch"] = None if ckpt["best_epoch"] is None else ckpt["best_epoch"] - 1
        ckpt["metrics"]["epoch"] -= 1
        ckpt["dataset"] = old_dataset(ckpt["dataset"])
        torch.save(ckpt, path)
    rows = lines(run / "history.jsonl")
    for row in rows:
        row["epoch"] -= 1
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = json.loads((run / "run.json").read_text())
    info["dataset"] = old_dataset(info["dataset"])
    info["resumes"] = [{"epoch": 1, "device": "cpu"}]  # an earlier resume, at 0-based epoch 1
    (run / "run.json").write_text(json.dumps(info))


def test_a_run_written_with_epochs_from_0_resumes_counted_from_1(tmp_path, data):
    reference, run = tmp_path / "reference", tmp_path / "run"
    summary = train_vae(data, reference, SMALL, TrainConfig(epochs=5, **RECIPE), runtime=RUNTIME)
    assert (summary.epochs_run, summary.last_epoch) == (5, 5)
    train_vae(data, run, SMALL, TrainConfig(epochs=3, **RECIPE), runtime=RUNTIME)
    _as_written_before(run)
    # a kill after the 0-based history line of the 4th epoch, before its checkpoint
    with open(run / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 3, "val_loss": -1}) + "\n")
    summary = train_vae(
        data, run, SMALL, TrainConfig(epochs=5, **RECIPE), resume=True, runtime=RUNTIME
    )
    assert (summary.epochs_run, summary.last_epoch) == (2, 5)
    rows = lines(run / "history.jsonl")
    assert [r.get("epoch", r.get("from_epoch")) for r in rows] == [1, 2, 3, 4, 4, 5]
    assert [r["event"] for r in rows if "event" in r] == ["resume"]
    # fidelity is also measured at a run's last epoch, which the two runs do not share
    timing = ("seconds", "time", "per_s", "fidelity")
    want = [
        {k: v for k, v in r.items() if not any(t in k for t in timing)}
        for r in lines(reference / "history.jsonl")
    ]
    got = [
        {k: v for k, v in r.items() if not any(t in k for t in timing)}
        for r in rows
        if "epoch" in r
    ]
    assert got == want
    last = torch.load(run / "checkpoints/last.pt", weights_only=True)
    ref_last = torch.load(reference / "checkpoints/last.pt", weights_only=True)
    assert last["epoch"] == ref_last["epoch"] == 5
    assert last["best_epoch"] == ref_last["best_epoch"] == summary.best_epoch
    assert all(torch.equal(last["model_state"][k], v) for k, v in ref_last["model_state"].items())
    resumes = json.loads((run / "run.json").read_text())["resumes"]
    assert [r["from_epoch"] for r in resumes] == [2, 4]
    card = json.loads((run / "model" / "card.json").read_text())
    assert card["metrics"]["epoch"] == summary.best_epoch
    best = next(r for r in rows if r.get("epoch") == summary.best_epoch)
    assert best["best"] and card["metrics"]["val_loss"] == best["val_loss"]


def test_epochs_are_counted_from_1_everywhere(tmp_path, data, caplog):
    run = tmp_path / "run"
    seen: list[int] = []
    with caplog.at_level("INFO", logger="kmervae.model.train"):
        summary = train_vae(
            data,
            run,
            SMALL,
            TrainConfig(epochs=3, **RECIPE),
            runtime=RUNTIME,
            on_epoch=lambda r: seen.append(r["epoch"]),
        )
    assert seen == [r["epoch"] for r in lines(run / "history.jsonl")] == [1, 2, 3]
    logged = [m.split()[1] for m in caplog.messages if m.startswith("epoch ")]
    assert logged == ["1/3", "2/3", "3/3"]
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["epoch"] == 3
    assert (summary.last_epoch, summary.epochs_run) == (3, 3)
    assert summary.best_epoch is not None and summary.best_epoch > RECIPE["kl_warmup"]
