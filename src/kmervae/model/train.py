"""Training loop of the VAE: seeded split, KL warm-up, schedules, checkpoints, resume.

A run directory holds everything about one training run::

    run.json              model and training config, dataset, split, provenance, resumes
    kmervae.log           full log (appended on resume)
    history.jsonl         one JSON line per epoch (appended; a resume continues it)
    training_curves.png   redrawn at most every 30 s and after the last epoch
    checkpoints/last.pt   after every epoch: weights, optimizer, schedule, epoch, RNG state
    checkpoints/best.pt   best validation loss after the KL warm-up
    model/                the best model as a published model folder (config.json,
                          model.safetensors, model card)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.evaluate.fidelity import local_distance_fidelity
from kmervae.io.atomic import remove_path, temporary_name
from kmervae.io.dataset import ProfileDataset, open_dataset
from kmervae.model.checkpoint import load_checkpoint, restore_rng_state, save_checkpoint
from kmervae.model.config import VAEConfig
from kmervae.model.data import Split, make_batches, random_split, read_rows
from kmervae.model.files import save_model
from kmervae.model.schedules import PlateauState, cosine_lr, kl_weight, plateau_step
from kmervae.model.vae import VAE, vae_loss
from kmervae.viz.curves import plot_training_curves

log = logging.getLogger(__name__)

SCHEDULES = ("plateau", "cosine", "constant")
# may differ between a run and its resume; every other field must match
RESUMABLE_CHANGES = ("epochs", "early_stopping")


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe; the defaults are the reference recipe."""

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

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise KmervaeError(f"unknown schedule {self.schedule!r} (one of {SCHEDULES})")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise KmervaeError(f"{name} must be at least 1")
        if not self.lr > 0 or self.min_lr < 0:
            raise KmervaeError("learning rates must be positive")
        if self.seed < 0:
            raise KmervaeError("the seed must be 0 or more")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**data)


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run (does not change the result beyond floating-point details)."""

    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # auto (bf16 on CUDA, else fp32), fp32, bf16
    placement: str = "auto"  # auto, resident, stream
    memory_mb: int = 2048  # host (or device) memory for the data
    compile: str = "none"  # none, default, reduce-overhead (CUDA graphs)


@dataclass
class TrainSummary:
    run_dir: Path
    epochs_run: int
    last_epoch: int
    best_epoch: int | None
    best_val_loss: float
    stopped_early: bool
    model_dir: Path


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise KmervaeError("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise KmervaeError("--device mps: Apple MPS is not available")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise KmervaeError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N or mps)")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _dataset_info(ds: ProfileDataset) -> dict[str, Any]:
    return {
        "path": str(ds.path),
        "kind": ds.kind,
        "n_rows": ds.n_rows,
        "ids_sha256": ds.manifest.get("ids_sha256"),
        "layout": ds.layout.to_json(),
        "sources": ds.source_names[:50],
    }


def _columns_for(ds: ProfileDataset, config: VAEConfig) -> np.ndarray:
    try:
        return ds.layout.subset_columns(config.ks)
    except ValueError:
        raise InputError(
            f"{ds.path}: its k-groups {list(ds.layout.ks)} do not include the "
            f"model's {list(config.ks)} ({config.n_features} features)"
        ) from None


class _History:
    """history.jsonl: append-only; a resume drops lines of epochs after the checkpoint."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def load(self, upto_epoch: int | None) -> None:
        rows = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if upto_epoch is not None and row.get("epoch", -1) > upto_epoch:
                    continue  # an epoch whose checkpoint never landed: it will be redone
                rows.append(row)
        tmp = temporary_name(self.path)
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.path)
        self.rows = rows

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)


def _check_resume(
    ckpt: dict[str, Any],
    model_config: VAEConfig,
    train_config: TrainConfig,
    ds_info: dict[str, Any],
    path: Path,
) -> None:
    stored_model = VAEConfig.from_json(ckpt["model_config"])
    if stored_model != model_config:
        diff = [
            f"{k}: {v} -> {model_config.to_json()[k]}"
            for k, v in stored_model.to_json().items()
            if model_config.to_json()[k] != v
        ]
        raise KmervaeError(f"{path}: resuming with a different model config ({'; '.join(diff)})")
    stored_train = ckpt["train_config"]
    diff = [
        f"{k}: {v} -> {train_config.to_json()[k]}"
        for k, v in stored_train.items()
        if k not in RESUMABLE_CHANGES and train_config.to_json().get(k) != v
    ]
    if diff:
        raise KmervaeError(
            f"{path}: resuming with a different training config "
            f"({'; '.join(diff)}); only {', '.join(RESUMABLE_CHANGES)} may change"
        )
    stored_ds = ckpt.get("dataset", {})
    if (stored_ds.get("n_rows"), stored_ds.get("ids_sha256")) != (
        ds_info["n_rows"],
        ds_info["ids_sha256"],
    ):
        raise KmervaeError(
            f"{path}: resuming on a different dataset than the run started with "
            f"({stored_ds.get('path')})"
        )


def train_vae(
    dataset: str | Path,
    run_dir: str | Path,
    model_config: VAEConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    validation: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    runtime: RuntimeOptions | None = None,
    provenance: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainSummary:
    """Train a VAE on a profile dataset; see the module docstring for the run directory."""
    model_config = model_config or VAEConfig()
    cfg = train_config or TrainConfig()
    runtime = runtime or RuntimeOptions()
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    ckpt: dict[str, Any] | None = None
    if resume:
        if not (ckpt_dir / "last.pt").exists():
            raise KmervaeError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        ckpt = load_checkpoint(ckpt_dir / "last.pt")
        for stale in [*ckpt_dir.glob(".*.tmp-*"), *run_dir.glob(".*.tmp-*")]:
            remove_path(stale)  # half-written files of the run that was stopped
    else:
        earlier = [
            run_dir / n
            for n in ("checkpoints", "history.jsonl", "run.json", "model", "training_curves.png")
            if (run_dir / n).exists()
        ]
        if earlier and not overwrite:
            raise KmervaeError(
                f"{run_dir} holds a training run (use --resume to continue it "
                "or --force to start over)"
            )
        for path in earlier:
            remove_path(path)

    ds = open_dataset(dataset)
    if ds.n_rows == 0:
        raise InputError(f"{ds.path}: the dataset is empty")
    columns = _columns_for(ds, model_config)
    ds_info = _dataset_info(ds)
    if validation is not None:
        val_ds = open_dataset(validation)
        if val_ds.n_rows == 0:
            raise InputError(f"{val_ds.path}: the validation dataset is empty")
        val_columns = _columns_for(val_ds, model_config)
        split = Split(np.arange(ds.n_rows), np.arange(val_ds.n_rows))
        ds_info["validation"] = _dataset_info(val_ds)
    else:
        val_ds, val_columns = ds, columns
        split = random_split(ds.n_rows, cfg.val_fraction, cfg.seed)
    if len(split.train) < cfg.batch_size:
        raise InputError(
            f"{ds.path}: {len(split.train)} training rows, fewer than one batch "
            f"({cfg.batch_size}); use a smaller --batch-size"
        )
    if len(split.validation) < cfg.batch_size:
        raise InputError(
            f"validation set of {len(split.validation)} rows is smaller than one "
            f"batch ({cfg.batch_size}); use a larger --val-fraction, a validation "
            "dataset, or a smaller --batch-size"
        )

    device = pick_device(runtime.device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    use_bf16 = runtime.precision == "bf16" or (
        runtime.precision == "auto" and device.type == "cuda"
    )
    if runtime.precision not in ("auto", "fp32", "bf16"):
        raise KmervaeError(f"unknown precision {runtime.precision!r} (auto, fp32 or bf16)")
    _seed_everything(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    model = VAE(model_config).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    plateau = PlateauState(cfg.lr)
    start_epoch, best_epoch, best_loss, since_best = 0, None, math.inf, 0
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(exist_ok=True)
    history = _History(run_dir / "history.jsonl")
    run_info_path = run_dir / "run.json"
    if ckpt is not None:
        _check_resume(ckpt, model_config, cfg, ds_info, ckpt_dir / "last.pt")
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        plateau = PlateauState.from_json(ckpt["plateau"])
        start_epoch = int(ckpt["epoch"]) + 1
        best_epoch = ckpt.get("best_epoch")
        best_loss = float(ckpt.get("best_val_loss", math.inf))
        since_best = int(ckpt.get("since_best", 0))
        restore_rng_state(ckpt["rng"])
        history.load(upto_epoch=int(ckpt["epoch"]))
        history.append(
            {
                "event": "resume",
                "from_epoch": start_epoch,
                "time": time.time(),
                "command": (provenance or {}).get("command"),
            }
        )
        run_info = json.loads(run_info_path.read_text()) if run_info_path.exists() else {}
        run_info.setdefault("resumes", []).append(
            {"epoch": start_epoch, "provenance": provenance or {}}
        )
        log.info("resuming %s at epoch %d", run_dir, start_epoch + 1)
    else:
        history.load(upto_epoch=None)
        run_info = {
            "format": "kmervae-run",
            "kmervae_version": __version__,
            "model_config": model_config.to_json(),
            "train_config": cfg.to_json(),
            "dataset": ds_info,
            "split": {
                "train": len(split.train),
                "validation": len(split.validation),
                "seed": cfg.seed,
                "val_fraction": cfg.val_fraction,
            },
            "device": str(device),
            "provenance": provenance or {},
        }
    tmp = temporary_name(run_info_path)
    tmp.write_text(json.dumps(run_info, indent=2) + "\n")
    os.replace(tmp, run_info_path)

    budget = runtime.memory_mb << 20
    train_batches = make_batches(
        ds, columns, split.train, device, runtime.placement, budget * 9 // 10
    )
    val_batches = make_batches(
        val_ds, val_columns, split.validation, device, runtime.placement, budget // 10
    )
    rng = np.random.default_rng([cfg.seed, 1])
    eval_rows = np.sort(
        rng.choice(split.train, min(cfg.eval_train_rows, len(split.train)), replace=False)
    )
    train_eval = torch.from_numpy(read_rows(ds, columns, eval_rows)).to(device)
    pool_rows = np.sort(
        rng.choice(split.validation, min(cfg.fidelity_pool, len(split.validation)), replace=False)
    )
    fidelity_pool = torch.from_numpy(read_rows(val_ds, val_columns, pool_rows)).to(device)
    step_model: torch.nn.Module = model
    if runtime.compile != "none":
        step_model = torch.compile(
            model,
            mode=None
            if runtime.compile == "default"  # type: ignore[assignment]
            else runtime.compile,
        )
    log.info(
        "training %s on %s: %d train / %d validation rows, batch %d, %s, device %s%s, data %s",
        "x".join(map(str, (model_config.n_features, *model_config.hidden, model_config.latent))),
        ds.path,
        len(split.train),
        len(split.validation),
        cfg.batch_size,
        cfg.schedule,
        device,
        " bf16" if use_bf16 else "",
        type(train_batches).__name__,
    )

    # larger evaluation batches pay on accelerators; on the CPU they only cost memory
    eval_batch = cfg.batch_size * 4 if device.type != "cpu" else cfg.batch_size
    stopped_early = False
    last_plot = -math.inf  # the PNG is redrawn at most every 30 s, and at the first and last
    epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        lr = (
            cosine_lr(
                epoch, lr=cfg.lr, min_lr=cfg.min_lr, epochs=cfg.epochs, warmup_epochs=cfg.lr_warmup
            )
            if cfg.schedule == "cosine"
            else plateau.lr
            if cfg.schedule == "plateau"
            else cfg.lr
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        klw = kl_weight(epoch, cfg.kl_warmup)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        model.train()
        sums = torch.zeros(3, device=device, dtype=torch.float64)
        n_seen = 0
        for batch in train_batches.epoch(
            cfg.batch_size, seed=cfg.seed * 7919 + epoch, drop_last=True
        ):
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                recon, target, mu, logvar = step_model(batch)
                losses = vae_loss(
                    recon,
                    target,
                    mu,
                    logvar,
                    beta=model_config.beta,
                    kl_weight=klw,
                    distance_weight=model_config.distance_weight,
                    distance_locality=model_config.distance_locality,
                )
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            n = batch.shape[0]
            sums += (
                torch.stack(
                    [losses["loss"].detach(), losses["recon"].detach(), losses["kl"].detach()]
                ).double()
                * n
            )
            n_seen += n
        train_seconds = time.perf_counter() - started
        train_loss, train_recon, train_kl = (sums / max(n_seen, 1)).tolist()
        if not math.isfinite(train_loss):
            raise KmervaeError(
                f"epoch {epoch + 1}: the training loss is not finite; lower the learning rate"
            )
        model.eval()
        val = _evaluate(
            model,
            val_batches.epoch(eval_batch, seed=None, drop_last=False),
            model_config,
            use_bf16,
            device,
        )
        train_eval_metrics = _evaluate(
            model, iter(torch.split(train_eval, eval_batch)), model_config, use_bf16, device
        )
        record: dict[str, Any] = {
            "epoch": epoch,
            "lr": lr,
            "kl_weight": klw,
            "train_loss": train_loss,
            "train_recon": train_recon,
            "train_kl": train_kl,
            "train_loss_eval": train_eval_metrics["loss"],
            "val_loss": val["loss"],
            "val_recon": val["recon"],
            "val_kl": val["kl"],
            "val_mse_per_k": val["mse_per_k"],
        }
        last_epoch = epoch == cfg.epochs - 1
        if cfg.fidelity_every > 0 and ((epoch + 1) % cfg.fidelity_every == 0 or last_epoch):
            fid = _fidelity(model, fidelity_pool, cfg.seed)
            if fid is not None:
                record.update(
                    fidelity_spearman=fid["spearman"],
                    fidelity_pearson=fid["pearson"],
                    fidelity_pool=fid["pool"],
                )
        # the KL warm-up epochs (artificially low loss) never count for best or plateau
        if cfg.schedule == "plateau":
            plateau = plateau_step(
                plateau,
                val["loss"],
                epoch,
                ignore_before=cfg.kl_warmup,
                patience=cfg.plateau_patience,
                factor=cfg.plateau_factor,
                min_lr=cfg.min_lr,
            )
            if plateau.lr != lr:
                log.info(
                    "epoch %d: learning rate %.3g -> %.3g (no validation gain in %d epochs)",
                    epoch + 1,
                    lr,
                    plateau.lr,
                    cfg.plateau_patience,
                )
        improved = epoch >= cfg.kl_warmup and val["loss"] < best_loss
        if improved:
            best_loss, best_epoch, since_best = val["loss"], epoch, 0
        elif epoch >= cfg.kl_warmup:
            since_best += 1
        seconds = time.perf_counter() - started
        record.update(
            seconds=seconds,
            train_seconds=train_seconds,
            samples_per_s=n_seen / max(train_seconds, 1e-9),
            epoch_samples_per_s=n_seen / max(seconds, 1e-9),
            best=improved,
        )
        payload = {
            "model_config": model_config.to_json(),
            "train_config": cfg.to_json(),
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "plateau": plateau.to_json(),
            "epoch": epoch,
            "best_epoch": best_epoch,
            "best_val_loss": best_loss,
            "since_best": since_best,
            "dataset": ds_info,
            "metrics": {k: v for k, v in record.items() if not isinstance(v, dict)},
        }
        history.append(record)
        if improved:
            save_checkpoint(ckpt_dir / "best.pt", payload)
        save_checkpoint(ckpt_dir / "last.pt", payload)
        if time.monotonic() - last_plot > 30 or epoch in (start_epoch, cfg.epochs - 1):
            plot_training_curves(history.rows, run_dir / "training_curves.png")
            last_plot = time.monotonic()
        log.info(
            "epoch %d/%d  train %.4g (eval mode %.4g)  val %.4g  recon %.4g  KL %.4g  "
            "lr %.3g  %.1f s  %.0f samples/s%s%s",
            epoch + 1,
            cfg.epochs,
            train_loss,
            train_eval_metrics["loss"],
            val["loss"],
            val["recon"],
            val["kl"],
            lr,
            seconds,
            record["samples_per_s"],
            f"  fidelity {record['fidelity_spearman']:.3f}"
            if "fidelity_spearman" in record
            else "",
            "  *best*" if improved else "",
        )
        if on_epoch is not None:
            on_epoch(record)
        if cfg.early_stopping and epoch >= cfg.kl_warmup and since_best >= cfg.early_stopping:
            log.info("early stop: no validation gain in %d epochs", cfg.early_stopping)
            stopped_early = True
            plot_training_curves(history.rows, run_dir / "training_curves.png")
            break

    model_dir = _publish(run_dir, ckpt_dir, model_config, cfg, ds_info, history.rows, provenance)
    return TrainSummary(
        run_dir, epoch + 1 - start_epoch, epoch, best_epoch, best_loss, stopped_early, model_dir
    )


def _evaluate(
    model: VAE, batches: Any, config: VAEConfig, use_bf16: bool, device: torch.device
) -> dict[str, Any]:
    """Eval-mode loss with the full KL weight, its parts, and the MSE per k-group."""
    layout = config.layout
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    per_column = torch.zeros(layout.n_features, device=device, dtype=torch.float64)
    n = 0
    with torch.no_grad():
        for batch in batches:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                recon, target, mu, logvar = model(batch)
                losses = vae_loss(
                    recon,
                    target,
                    mu,
                    logvar,
                    beta=config.beta,
                    kl_weight=1.0,
                    distance_weight=config.distance_weight,
                    distance_locality=config.distance_locality,
                )
            rows = batch.shape[0]
            sums += torch.stack([losses["loss"], losses["recon"], losses["kl"]]).double() * rows
            per_column += ((recon.float() - target) ** 2).sum(dim=0).double()
            n += rows
    loss, recon_mse, kl = (sums / max(n, 1)).tolist()
    per_col = (per_column / max(n, 1)).cpu().numpy()
    mse_per_k = {str(k): float(per_col[layout.group_slice(k)].mean()) for k in layout.ks}
    return {"loss": loss, "recon": recon_mse, "kl": kl, "mse_per_k": mse_per_k}


def _fidelity(model: VAE, pool: torch.Tensor, seed: int) -> dict[str, Any] | None:
    if pool.shape[0] < 10:
        return None
    with torch.no_grad():
        clr = model.encoder.clr(pool)
        mu, _ = model.encoder.forward_clr(clr)
    return local_distance_fidelity(
        mu.float().cpu().numpy(), clr.cpu().numpy(), n_queries=100, k=50, seed=seed
    )


def _publish(
    run_dir: Path,
    ckpt_dir: Path,
    config: VAEConfig,
    cfg: TrainConfig,
    ds_info: dict[str, Any],
    history: list[dict[str, Any]],
    provenance: dict[str, Any] | None,
) -> Path:
    """Write the best (else last) weights as a model folder with its card."""
    source = ckpt_dir / "best.pt" if (ckpt_dir / "best.pt").exists() else ckpt_dir / "last.pt"
    ckpt = load_checkpoint(source)
    model = VAE(config)
    model.load_state_dict(ckpt["model_state"])
    epochs = [h for h in history if "epoch" in h]
    chosen = next((h for h in epochs if h["epoch"] == ckpt["epoch"]), {})
    fidelity = [h for h in epochs if "fidelity_spearman" in h]
    card = {
        "name": run_dir.name,
        "training_data": {k: ds_info.get(k) for k in ("path", "n_rows", "ids_sha256", "sources")},
        "metrics": {
            "epoch": int(ckpt["epoch"]) + 1,
            "val_loss": chosen.get("val_loss"),
            "val_recon_mse_x_F": chosen.get("val_recon"),
            "val_mse_per_k": chosen.get("val_mse_per_k"),
            "fidelity_spearman_latest": fidelity[-1]["fidelity_spearman"] if fidelity else None,
            "fidelity_pool": fidelity[-1]["fidelity_pool"] if fidelity else None,
            "chosen_from": source.name,
        },
        "training": cfg.to_json(),
        "provenance": provenance or {},
    }
    return save_model(model, run_dir / "model", card=card, overwrite=True)
