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

from kmervae.errors import InputError
from kmervae.io.dataset import ProfileDataset
from kmervae.model.data import random_split

log = logging.getLogger(__name__)


@dataclass
class HeldOut:
    """Sorted int64 row indices and a one-line account of where they come from."""

    rows: np.ndarray
    source: str


def _same_dataset(info: dict[str, Any], dataset: ProfileDataset) -> bool:
    sha = dataset.manifest.get("ids_sha256")
    return (
        info.get("n_rows") == dataset.n_rows and sha is not None and info.get("ids_sha256") == sha
    )


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
        ds_info = info.get("dataset", {})
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


def sample_rows(rows: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """A seeded sample of ``count`` of ``rows`` (all when None or more), sorted."""
    if count is None or count >= len(rows):
        return np.asarray(rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, count, replace=False))
