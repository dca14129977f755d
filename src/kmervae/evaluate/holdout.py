"""Which rows of a dataset are held out, i.e. fair to evaluate a model on.

- A dataset the model never saw (a test set, the ``.validation`` part written by
  ``kmervae concat --split``): all its rows.
- The dataset a model was trained on: the validation part of that training run, rebuilt
  from the run's ``run.json`` (same seeded permutation as :func:`kmervae.model.data.random_split`).
  The run is found beside the model (``RUN_DIR/model``) or given explicitly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.dataset import ProfileDataset, read_dataset_record
from kmervae.model.data import random_split, sample_rows

log = logging.getLogger(__name__)


@dataclass
class HeldOut:
    """Sorted int64 row indices and a one-line account of where they come from."""

    rows: np.ndarray
    source: str


def _same_dataset(info: dict[str, Any], dataset: ProfileDataset) -> bool:
    """Whether the dataset record ``info`` describes ``dataset``: its rows and ids."""
    info = read_dataset_record(info)
    return info.get("n_rows") == dataset.n_rows and info.get("ids_sha256") == _ids_sha256(dataset)


def held_out_rows(
    dataset: ProfileDataset,
    *,
    run_dir: str | Path | None = None,
    model_path: str | Path | None = None,
) -> HeldOut:
    """The rows of ``dataset`` to evaluate on.

    Parameters
    ----------
    run_dir : a training run directory; when ``dataset`` is its training data, only the
        run's validation rows are held out.
    model_path : a model; if it sits in a run directory (``RUN_DIR/model``) that run is
        used the same way.

    Raises
    ------
    InputError
        ``run_dir`` has no readable ``run.json``, or ``dataset`` is the training part of a
        run that had a separate validation dataset (no row of it is held out).
    """
    run = Path(run_dir) if run_dir is not None else None
    if run is None and model_path is not None:
        candidate = Path(model_path).parent
        if (candidate / "run.json").is_file():
            run = candidate
    if run is not None:
        path = run / "run.json"
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            if run_dir is not None:
                raise InputError(f"{path}: not a readable training run ({exc})") from None
            info = {}
        ds_info = read_dataset_record(info.get("dataset"))
        split = info.get("split", {})
        if _same_dataset(ds_info, dataset):
            if "validation" in ds_info:
                raise InputError(
                    f"{dataset.path} is the training data of {run} (validated on "
                    f"{ds_info['validation'].get('path')}): none of its rows is held out"
                )
            rows = random_split(
                dataset.n_rows, float(split["val_fraction"]), int(split["seed"])
            ).validation
            return HeldOut(
                rows,
                f"the validation part of run {run} ({len(rows)} of {dataset.n_rows} rows, "
                f"seed {split['seed']})",
            )
        if run_dir is not None and not _same_dataset(ds_info.get("validation", {}), dataset):
            log.warning(
                "%s is not the training data of %s: all its rows are used", dataset.path, run
            )
    return HeldOut(np.arange(dataset.n_rows), f"all {dataset.n_rows} rows of {dataset.path}")


# -- rows the model was trained on ---------------------------------------------------------


@dataclass
class TrainingRecord:
    """What a model records about its training data.

    ``path``, ``n_rows``, ``ids_sha256``: the training dataset. ``split``: the seed and
    validation fraction of the random split that held part of it out, or None when every
    row was trained on (a separate validation dataset) or when that is not recorded
    (``split_known`` False). ``where``: the file the record was read from. ``sample``: the
    ``rows`` and ``seed`` of the seeded sample a PCA model was fitted on
    (:func:`kmervae.model.data.sample_rows`), None when it was fitted on every row.
    """

    path: str | None
    n_rows: int | None
    ids_sha256: str | None
    split: dict[str, Any] | None
    split_known: bool
    where: str
    sample: dict[str, Any] | None = None


@dataclass
class TrainingOverlap:
    """Evaluated rows that are training rows: sorted int64 ``rows`` of the evaluated dataset
    (None: the dataset was built from the training data but the rows cannot be told apart),
    the ``record`` they were found through and one ``example`` id."""

    rows: np.ndarray | None
    record: TrainingRecord
    example: str = ""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _run_of(model_path: Path, run_dir: str | Path | None) -> Path | None:
    if run_dir is not None:
        return Path(run_dir)
    for candidate in (
        model_path.parent,
        model_path.parent.parent,
    ):  # RUN/model, RUN/checkpoints/x.pt
        if (candidate / "run.json").is_file():
            return candidate
    return None


def training_record(
    model_path: str | Path, *, run_dir: str | Path | None = None
) -> TrainingRecord | None:
    """The training data of a model: from its training run's ``run.json`` (given, or beside
    the model) or else from the ``training_data`` of its model card; None when neither
    records it (an imported or exported model, a folder written by hand)."""
    model_path = Path(model_path)
    run = _run_of(model_path, run_dir)
    info = _read_json(run / "run.json") if run is not None else None
    if run is not None and info is not None and isinstance(info.get("dataset"), dict):
        ds = read_dataset_record(info["dataset"])
        separate = "validation" in ds
        return TrainingRecord(
            ds.get("path"),
            ds.get("n_rows"),
            ds.get("ids_sha256"),
            None if separate else info.get("split"),
            True,
            str(run / "run.json"),
        )
    card = _read_json(model_path / "card.json") if model_path.is_dir() else None
    data = read_dataset_record((card or {}).get("training_data"))
    if not data.get("ids_sha256"):
        return None
    if (card or {}).get("kind") == "pca":  # fitted on every row, or on a seeded sample
        sample = (card or {}).get("sample")
        return TrainingRecord(
            data.get("path"),
            data.get("n_rows"),
            data.get("ids_sha256"),
            None,
            True,
            str(model_path / "card.json"),
            sample if isinstance(sample, dict) else None,
        )
    training = (card or {}).get("training") or {}
    split = None
    if "validation" in data and not data["validation"] and "val_fraction" in training:
        split = {"seed": training.get("seed"), "val_fraction": training.get("val_fraction")}
    return TrainingRecord(
        data.get("path"),
        data.get("n_rows"),
        data.get("ids_sha256"),
        split,
        "validation" in data,
        str(model_path / "card.json"),
    )


def _ids_sha256(dataset: ProfileDataset) -> str:
    """The ids checksum that dataset records hold (:func:`kmervae.io.dataset.dataset_record`):
    the SHA-256 of the ids text, whether the file holding it is compressed or not."""
    return dataset.ids_text_sha256


def _trained_rows(n_rows: int, record: TrainingRecord) -> np.ndarray:
    """Rows of the training dataset the model was fitted on (all when not known better)."""
    if record.sample is not None:
        return sample_rows(
            np.arange(n_rows), int(record.sample["rows"]), int(record.sample["seed"])
        )
    if record.split is None:
        return np.arange(n_rows)
    return random_split(
        n_rows, float(record.split["val_fraction"]), int(record.split["seed"])
    ).train


def training_overlap(
    dataset: ProfileDataset,
    rows: np.ndarray,
    record: TrainingRecord,
) -> TrainingOverlap | None:
    """Which of ``rows`` (sorted int64 row indices of ``dataset``) the model was trained on.

    A row counts when its id and its length equal those of a trained row of the recorded
    training dataset (so contigs of another assembly that happen to share an id do not).
    Returns None, after a warning, when the training data cannot be read back or has
    changed since (the check is then not made).
    """
    from kmervae.io.dataset import open_dataset
    from kmervae.io.ids import id_hashes

    if _ids_sha256(dataset) == record.ids_sha256 and dataset.n_rows == record.n_rows:
        trained = _trained_rows(dataset.n_rows, record)
        hit = rows[np.isin(rows, trained)]
        return TrainingOverlap(hit, record, dataset.id_of_row(int(hit[0])) if len(hit) else "")
    inputs = (dataset.manifest.get("provenance") or {}).get("inputs") or []
    made_from = [
        i for i in inputs if isinstance(i, dict) and i.get("ids_sha256") == record.ids_sha256
    ]
    path = Path(record.path) if record.path else None
    training = None
    if path is not None and path.exists():
        try:
            training = open_dataset(path)
        except KmervaeError as exc:
            log.warning("cannot read the training data %s (%s)", path, exc)
    if training is None or (_ids_sha256(training), training.n_rows) != (
        record.ids_sha256,
        record.n_rows,
    ):
        if made_from:  # built from the training data, but its rows cannot be matched
            return TrainingOverlap(None, record, "")
        log.warning(
            "the training data recorded in %s (%s) is %s: cannot check that %s holds no "
            "training rows",
            record.where,
            record.path,
            "missing" if training is None else "changed since",
            dataset.path,
        )
        return None
    trained = _trained_rows(training.n_rows, record)
    # ids hashed (64 bit), candidates confirmed on the ids and the lengths
    train_hashes = np.empty(training.n_rows, np.uint64)
    start = 0
    for block in training.iter_ids():
        train_hashes[start : start + len(block)] = id_hashes(block)
        start += len(block)
    train_hashes = train_hashes[trained]
    eval_hashes = np.empty(dataset.n_rows, np.uint64)
    start = 0
    for block in dataset.iter_ids():
        eval_hashes[start : start + len(block)] = id_hashes(block)
        start += len(block)
    candidates = rows[np.isin(eval_hashes[rows], train_hashes)]
    if len(candidates) == 0 and made_from:
        # built from the training data with its ids changed (concat --prefix-ids)
        return TrainingOverlap(None, record, "")
    if len(candidates) == 0:
        return TrainingOverlap(candidates, record)
    wanted = set(eval_hashes[candidates].tolist())
    train_lengths = training.lengths()
    trained_set = np.zeros(training.n_rows, bool)
    trained_set[trained] = True
    by_id: dict[str, int] = {}
    start = 0
    for block in training.iter_ids():
        hashes = id_hashes(block)
        for offset in np.flatnonzero(np.isin(hashes, list(wanted))):
            if trained_set[start + offset]:
                by_id[block[offset]] = int(train_lengths[start + offset])
        start += len(block)
    lengths = dataset.lengths()
    names = _ids_of_rows(dataset, candidates)
    keep = [
        i
        for i, (r, name) in enumerate(zip(candidates, names, strict=True))
        if by_id.get(name) == int(lengths[r])
    ]
    return TrainingOverlap(candidates[keep], record, names[keep[0]] if keep else "")


def _ids_of_rows(dataset: ProfileDataset, rows: np.ndarray) -> list[str]:
    """The ids of the sorted ``rows``, in one pass over the ids file."""
    out: list[str] = []
    start = 0
    at = 0
    for block in dataset.iter_ids():
        stop = start + len(block)
        while at < len(rows) and rows[at] < stop:
            out.append(block[int(rows[at]) - start])
            at += 1
        start = stop
    return out


def recorded_validation(dataset: ProfileDataset, record: TrainingRecord) -> HeldOut | None:
    """When ``dataset`` is the model's training data and the record says how it was split:
    the validation rows of that seeded split (None otherwise)."""
    same = _ids_sha256(dataset) == record.ids_sha256 and dataset.n_rows == record.n_rows
    if not (same and record.split is not None):
        return None
    seed, fraction = int(record.split["seed"]), float(record.split["val_fraction"])
    rows = random_split(dataset.n_rows, fraction, seed).validation
    return HeldOut(
        rows,
        f"the validation part recorded in {record.where} ({len(rows)} of {dataset.n_rows} "
        f"rows, seed {seed})",
    )
