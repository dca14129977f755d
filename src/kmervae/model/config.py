"""Configuration: frozen dataclasses for the architecture (:class:`VAEConfig`), the training
recipe (:class:`TrainConfig`) and how to run it (:class:`RuntimeOptions`); the defaults are
the reference model and recipe. The first two check their values on construction. A run
folder's record (``run.json``) holds them; :func:`check_run_folder` tells, before anything is
loaded, whether a run folder can be started or resumed. A PCA model's config is
:class:`PCAConfig`; :func:`read_model_folder` reads the ``config.json`` of a model folder of
either kind."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError, OutputExistsError
from kmervae.io.atomic import check_writable, remove_stale_temporaries
from kmervae.kmers.layout import FeatureLayout


class _KGroups:
    """The feature layout of a config's k-groups ``ks``."""

    ks: tuple[int, ...]

    @property
    def layout(self) -> FeatureLayout:
        return FeatureLayout(tuple(self.ks))

    @property
    def n_features(self) -> int:
        return self.layout.n_features


@dataclass(frozen=True)
class VAEConfig(_KGroups):
    """Architecture of the VAE.

    Reference: canonical 6…1-mers (2772 features) -> 1024 -> 512 -> (mu, log var) of 384,
    decoder 384 -> 512 -> 1024 -> 2772 linear; each hidden layer Linear -> BatchNorm ->
    LeakyReLU(0.2); log var clipped to [-20, 2]; beta 0.05. BatchNorm epsilon and momentum
    follow the reference implementation (Keras: epsilon 1e-3, moving average 0.99).

    ``distance_weight`` (default 0: the reference loss) adds a distance-preserving term to
    the loss, whose pairs count by ``exp(-d / distance_locality)`` (see
    :func:`kmervae.model.vae.distance_term`).
    """

    ks: tuple[int, ...] = (6, 5, 4, 3, 2, 1)
    hidden: tuple[int, ...] = (1024, 512)
    latent: int = 384
    beta: float = 0.05
    dropout: float = 0.0
    batchnorm: bool = True
    leaky_slope: float = 0.2
    logvar_min: float = -20.0
    logvar_max: float = 2.0
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01  # PyTorch convention: weight of the new batch statistics
    distance_weight: float = 0.0
    distance_locality: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        try:
            FeatureLayout(tuple(self.ks))
        except ValueError as exc:
            raise KmervaeError(f"model config: {exc}") from None
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise KmervaeError(f"model config: hidden widths must be positive, got {self.hidden}")
        if self.latent < 1:
            raise KmervaeError(f"model config: latent size must be positive, got {self.latent}")
        if self.beta < 0:
            raise KmervaeError(f"model config: beta must be >= 0, got {self.beta}")
        if self.distance_weight < 0:
            raise KmervaeError(
                f"model config: distance weight must be >= 0, got {self.distance_weight}"
            )
        if not self.distance_locality > 0:
            raise KmervaeError(
                f"model config: distance locality must be > 0, got {self.distance_locality}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise KmervaeError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        if self.logvar_min >= self.logvar_max:
            raise KmervaeError("model config: logvar_min must be below logvar_max")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ks"] = list(self.ks)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise KmervaeError(f"model config: unknown fields {sorted(unknown)}")
        values = dict(data)
        for name in ("ks", "hidden"):
            if name in values:
                values[name] = tuple(int(v) for v in values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> VAEConfig:
        return dataclasses.replace(self, **changes)


#: The 5-mer-through-1-mer variant (692 features) with 10 % dropout: the research's later
#: model, which did better on genus-level neighbours; the reference widths and latent size.
FIVE_MER_CONFIG = VAEConfig(ks=(5, 4, 3, 2, 1), dropout=0.1)

#: named architectures (``kmervae train --preset``)
MODEL_PRESETS = {"reference": VAEConfig(), "research": FIVE_MER_CONFIG}


@dataclass(frozen=True)
class PCAConfig(_KGroups):
    """What a PCA model reads and gives: the k-groups ``ks`` of its input, in column order,
    and ``latent`` coordinates (its components)."""

    ks: tuple[int, ...]
    latent: int

    def __post_init__(self) -> None:
        try:
            FeatureLayout(tuple(self.ks))
        except ValueError as exc:
            raise KmervaeError(f"PCA config: {exc}") from None
        if not 1 <= self.latent <= self.n_features:
            raise KmervaeError(
                f"PCA config: {self.latent} components for {self.n_features} features"
            )

    def to_json(self) -> dict[str, Any]:
        return {"kind": "pca", "ks": list(self.ks), "latent": self.latent}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PCAConfig:
        return cls(tuple(int(k) for k in data["ks"]), int(data["latent"]))


#: the config of a model that embeds: a VAE's or a PCA's
EncoderConfig: TypeAlias = VAEConfig | PCAConfig

#: ``format`` and newest ``schema_version`` of the ``config.json`` of a model folder
MODEL_FORMAT = "kmervae-model"
MODEL_SCHEMA = 1
#: what a model folder holds (``kind`` in its ``config.json``; absent: ``vae``)
MODEL_KINDS = ("vae", "pca")


def read_model_folder(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of the model folder ``path``, checked: a kmervae model config of
    a schema and kind this version reads; ``kind`` is filled in (``vae`` when absent).

    Raises
    ------
    InputError
        No ``config.json``, not JSON, not a kmervae model config, a newer schema or an
        unknown kind.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(
            f"{path}: not a kmervae model (no config.json; expected a model folder "
            "or a training checkpoint .pt)"
        )
    try:
        meta = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}/config.json: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: config.json is not a kmervae model config")
    if meta.get("schema_version", 0) > MODEL_SCHEMA:
        raise InputError(
            f"{path}: model schema {meta['schema_version']} is newer than this "
            f"kmervae ({__version__}) reads; upgrade kmervae"
        )
    meta.setdefault("kind", "vae")
    if meta["kind"] not in MODEL_KINDS:
        raise InputError(
            f"{path}: a model of kind {meta['kind']!r}, which this kmervae ({__version__}) "
            f"does not read ({', '.join(MODEL_KINDS)}); upgrade kmervae"
        )
    return meta


def model_kind(path: str | Path) -> str | None:
    """``vae`` or ``pca`` for a model folder, None for anything else (a file, a folder
    without a readable kmervae ``config.json``): a cheap look before a model is loaded."""
    try:
        return str(read_model_folder(path)["kind"]) if Path(path).is_dir() else None
    except InputError:
        return None


SCHEDULES = ("plateau", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
PLACEMENTS = ("auto", "resident", "stream")
COMPILE_MODES = ("none", "default", "reduce-overhead")
MAX_SEED = 2**32 - 1
# what a run folder holds: --force replaces a folder only if it holds one of these
RUN_ENTRIES = (
    "run.json",
    "checkpoints",
    "history.jsonl",
    "kmervae.log",
    "model",
    "training_curves.png",
)


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe; the defaults are the reference recipe.

    ``noise_fraction`` > 0 trains on length-noise views (:mod:`kmervae.model.views`): that
    share of each batch's rows is encoded as a view at a length drawn log-uniform in
    [``noise_min_length``, ``noise_max_length``] bp, its clean profile the reconstruction
    target; ``consistency_weight`` > 0 also pulls each view's mean towards its clean row's.
    Off by default.
    """

    epochs: int = 500
    batch_size: int = 1024
    lr: float = 1e-4
    schedule: str = "plateau"
    kl_warmup: int = 5
    plateau_patience: int = 20
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    lr_warmup: int = 5
    val_fraction: float = 0.1
    early_stopping: int = 0
    seed: int = 42
    fidelity_every: int = 10
    fidelity_pool: int = 5000
    eval_train_rows: int = 10000
    weight_decay: float = 0.0
    noise_fraction: float = 0.0
    noise_min_length: int = 1000
    noise_max_length: int = 10000
    consistency_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise KmervaeError(f"unknown schedule {self.schedule!r} (one of {SCHEDULES})")
        minimum = {
            "epochs": 1,
            "batch_size": 1,
            "kl_warmup": 0,
            "plateau_patience": 0,
            "lr_warmup": 0,
            "early_stopping": 0,
            "seed": 0,
            "fidelity_every": 0,
            "fidelity_pool": 10,
            "eval_train_rows": 1,
            "noise_min_length": 10,
            "noise_max_length": 10,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise KmervaeError(
                    f"training config: {name} must be an integer >= {low}, got {value!r}"
                )
        if self.seed > MAX_SEED:
            raise KmervaeError(f"training config: seed must be at most {MAX_SEED}, got {self.seed}")
        for name in (
            "lr",
            "min_lr",
            "plateau_factor",
            "val_fraction",
            "weight_decay",
            "noise_fraction",
            "consistency_weight",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
            ):
                raise KmervaeError(
                    f"training config: {name} must be a finite number, got {value!r}"
                )
        if not self.lr > 0:
            raise KmervaeError(f"training config: lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise KmervaeError(
                f"training config: min_lr must be in [0, lr = {self.lr}], got {self.min_lr}"
            )
        if not 0 < self.plateau_factor < 1:
            raise KmervaeError(
                f"training config: plateau_factor must be in (0, 1), got {self.plateau_factor}"
            )
        if not 0 < self.val_fraction < 1:
            raise KmervaeError(
                f"training config: val_fraction must be in (0, 1), got {self.val_fraction}"
            )
        if self.weight_decay < 0:
            raise KmervaeError(
                f"training config: weight_decay must be >= 0, got {self.weight_decay}"
            )
        if not 0 <= self.noise_fraction <= 1:
            raise KmervaeError(
                f"training config: noise_fraction must be in [0, 1], got {self.noise_fraction}"
            )
        if self.noise_min_length > self.noise_max_length:
            raise KmervaeError(
                "training config: noise_min_length must be at most noise_max_length, got "
                f"{self.noise_min_length} > {self.noise_max_length}"
            )
        if self.consistency_weight < 0:
            raise KmervaeError(
                f"training config: consistency_weight must be >= 0, got {self.consistency_weight}"
            )
        if self.consistency_weight > 0 and self.noise_fraction == 0:
            raise KmervaeError(
                "training config: consistency_weight needs length-noise views (noise_fraction > 0)"
            )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise KmervaeError(f"training config: unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run (does not change the result beyond floating-point details)."""

    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # auto (bf16 on CUDA that has it, else fp32), fp32, bf16
    placement: str = "auto"  # auto, resident, stream
    memory_mb: int = 2048  # host (or device) memory for the data
    compile: str = "none"  # none, default, reduce-overhead (CUDA graphs)


def check_run_folder(run_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is loaded, a run folder the request cannot use: on resume one
    without a checkpoint; otherwise an existing run without ``overwrite``, a non-empty folder
    that is not a run, or a missing or read-only parent folder. Temporaries that a killed run
    left beside ``run_dir`` are removed (an earlier run moved aside is put back)."""
    run_dir = Path(run_dir)
    if resume:
        remove_stale_temporaries(run_dir)
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise KmervaeError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        for folder in (run_dir, run_dir / "checkpoints"):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise KmervaeError(f"{folder} is not writable")
        return
    check_writable(run_dir, overwrite=True)  # parent folder; stale temporaries
    if run_dir.is_symlink():
        raise KmervaeError(f"{run_dir} is a symbolic link; give a run folder")
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise KmervaeError(f"{run_dir} exists and is not a run folder")
    entries = [entry.name for entry in run_dir.iterdir()]
    if entries and not overwrite:
        raise OutputExistsError(run_dir, resumable=True)
    if entries and not set(entries) & set(RUN_ENTRIES):
        raise KmervaeError(
            f"{run_dir} is not a training run folder; overwrite replaces only run folders"
        )


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """``run_dir/run.json`` (configs, data, provenance); an unreadable one is a KmervaeError."""
    path = Path(run_dir) / "run.json"
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KmervaeError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key, {}), dict) for key in ("model_config", "train_config")
    ):
        raise KmervaeError(f"{path}: not a kmervae run record")
    return data
