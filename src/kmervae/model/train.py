"""Training loop of the VAE: seeded split, KL warm-up, schedules, checkpoints, resume.

A run directory holds everything about one training run::

    run.json              model and training config, dataset (with checksums), split,
                          provenance, resumes
    kmervae.log           full log (appended on resume)
    history.jsonl         one JSON line per epoch (appended; a resume continues it)
    training_curves.png   redrawn at most every 30 s and after the last epoch
    checkpoints/last.pt   after every epoch: weights, optimizer, schedule, epoch, RNG state
    checkpoints/best.pt   best validation loss after the KL warm-up
    model/                the best model as a published model folder (config.json,
                          model.safetensors, model card)

Everything about a request is checked before anything is written: the run folder, the
device and runtime options, the data (which must hold the model's k-groups and at least one
batch per part) and, on resume, that the configuration and the data (their checksums) are
the ones the run started with. A new run is built in a temporary folder beside its run folder
and moved into place when its first checkpoint has landed, replacing an earlier run there
only then; a run that fails or is stopped before that leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kmervae._version import __version__
from kmervae.errors import KmervaeError
from kmervae.evaluate.fidelity import local_distance_fidelity
from kmervae.io.atomic import (
    atomic_file,
    naming_oserrors,
    remove_path,
    remove_stale_temporaries,
    replace_path,
    temporary_name,
)
from kmervae.model.checkpoint import (
    check_resume_config,
    check_resume_data,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from kmervae.model.config import (
    COMPILE_MODES,
    PLACEMENTS,
    PRECISIONS,
    RuntimeOptions,
    TrainConfig,
    VAEConfig,
    check_run_folder,
    read_run_record,
)
from kmervae.model.data import TrainingData, make_batches, open_training_data, read_rows
from kmervae.model.files import save_model
from kmervae.model.schedules import PlateauState, cosine_lr, kl_weight, plateau_step
from kmervae.model.vae import VAE, vae_loss
from kmervae.viz.curves import plot_training_curves

log = logging.getLogger(__name__)


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
    """The torch device for ``--device`` (auto, cpu, cuda, cuda:N or mps), checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, colon, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (colon and (kind != "cuda" or not index.isdigit())):
        raise KmervaeError(f"--device {name}: unknown device (auto, cpu, cuda, cuda:N or mps)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise KmervaeError(f"--device {name}: no CUDA device is available")
        count = torch.cuda.device_count()
        if colon and int(index) >= count:
            raise KmervaeError(
                f"--device {name}: no such CUDA device (this machine has {count}, "
                f"cuda:0 to cuda:{count - 1})"
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise KmervaeError(f"--device {name}: Apple MPS is not available")
    return torch.device(name)


def check_runtime(runtime: RuntimeOptions) -> tuple[torch.device, bool]:
    """Check the runtime options against each other and the device; returns the device and
    whether to train under bf16 autocast."""
    for value, allowed, flag in (
        (runtime.precision, PRECISIONS, "--precision"),
        (runtime.placement, PLACEMENTS, "--placement"),
        (runtime.compile, COMPILE_MODES, "--compile"),
    ):
        if value not in allowed:
            raise KmervaeError(f"{flag} {value}: unknown (one of {', '.join(allowed)})")
    if runtime.threads is not None and not 0 <= runtime.threads <= 4096:
        raise KmervaeError(f"--threads must be in [0, 4096], got {runtime.threads}")
    if runtime.memory_mb < 1:
        raise KmervaeError(f"--memory must be >= 1 (MB), got {runtime.memory_mb}")
    device = pick_device(runtime.device)
    bf16_ok = device.type == "cpu" or (
        device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
    )
    if runtime.precision == "bf16" and not bf16_ok:
        raise KmervaeError(f"--precision bf16: not supported on {device}; use fp32")
    if runtime.compile == "reduce-overhead" and device.type != "cuda":
        raise KmervaeError(
            f"--compile reduce-overhead uses CUDA graphs and needs a CUDA device, not {device}"
        )
    use_bf16 = runtime.precision == "bf16" or (
        runtime.precision == "auto" and device.type == "cuda" and bf16_ok
    )
    return device, use_bf16


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name; a failure names ``path``."""
    with naming_oserrors(path), atomic_file(path, overwrite=True) as tmp, open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


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
        _write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self.rows = rows

    def append(self, row: dict[str, Any]) -> None:
        with naming_oserrors(self.path), open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)


@dataclass
class _Plan:
    """A checked request: the opened data, the device, and the checkpoint to resume from."""

    data: TrainingData
    device: torch.device
    use_bf16: bool
    ckpt: dict[str, Any] | None


def _prepare(
    dataset: str | Path,
    validation: str | Path | None,
    run_dir: Path,
    model_config: VAEConfig,
    cfg: TrainConfig,
    runtime: RuntimeOptions,
    resume: bool,
) -> _Plan:
    """Every check that can fail, cheapest first; writes nothing."""
    device, use_bf16 = check_runtime(runtime)
    ckpt = None
    if resume:
        last = run_dir / "checkpoints" / "last.pt"
        ckpt = load_checkpoint(last)
        check_resume_config(ckpt, model_config, cfg, last)
    data = open_training_data(
        dataset,
        validation,
        model_config.ks,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
    )
    if ckpt is not None:
        check_resume_data(ckpt.get("dataset", {}), data.info, run_dir)
    return _Plan(data, device, use_bf16, ckpt)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a few steps that must not be cut in two."""
    hold = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, hold)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _RunFiles:
    """Where a run is written: a new run in a temporary folder beside its run folder until
    its first checkpoint lands (:meth:`place` then moves it into place, replacing an earlier
    run), a resumed run in its run folder."""

    def __init__(self, final: Path, resume: bool):
        self.final = final
        self.placed = resume
        if resume:
            self.root = final
        else:
            self.root = temporary_name(final)
            remove_path(self.root)
            self.root.mkdir()
        self.saved_epoch: int | None = None  # of the newest checkpoint in place

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def place(self) -> None:
        if self.placed:
            return
        with _signals_held():
            replace_path(self.root, self.final)
            self.root, self.placed = self.final, True
        log.debug("run moved into place at %s", self.final)


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
    on_run_dir: Callable[[Path], None] | None = None,
) -> TrainSummary:
    """Train a VAE on a profile dataset; see the module docstring for the run directory.

    ``on_run_dir`` is called with the folder the run is written in (for a new run, the
    temporary folder that becomes ``run_dir``) before anything is written there.
    ``overwrite``: replace an earlier run in ``run_dir``, once the new run's first checkpoint
    has landed. A failure after that keeps the checkpoints and says that ``resume`` continues.
    """
    model_config = model_config or VAEConfig()
    cfg = train_config or TrainConfig()
    runtime = runtime or RuntimeOptions()
    run_dir = Path(run_dir)
    check_run_folder(run_dir, resume=resume, overwrite=overwrite)
    plan = _prepare(dataset, validation, run_dir, model_config, cfg, runtime, resume)
    files = _RunFiles(run_dir, resume)
    if plan.ckpt is not None:
        files.saved_epoch = int(plan.ckpt["epoch"])
    try:
        if on_run_dir is not None:
            on_run_dir(files.root)
        return _train(plan, files, model_config, cfg, runtime, provenance, on_epoch)
    except BaseException as exc:
        if not files.placed:
            remove_path(files.root)
            raise
        kept = (
            f"{run_dir} keeps the checkpoint of epoch {files.saved_epoch + 1}; "
            "--resume continues the run"
            if files.saved_epoch is not None
            else ""
        )
        if isinstance(exc, KeyboardInterrupt):
            log.info("training stopped; %s", kept)
        elif isinstance(exc, KmervaeError | OSError) and kept:
            raise KmervaeError(f"{exc} ({kept})") from None
        raise


def _train(
    plan: _Plan,
    files: _RunFiles,
    model_config: VAEConfig,
    cfg: TrainConfig,
    runtime: RuntimeOptions,
    provenance: dict[str, Any] | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> TrainSummary:
    data, device, use_bf16, ckpt = plan.data, plan.device, plan.use_bf16, plan.ckpt
    ds, val_ds, split, ds_info = data.dataset, data.validation, data.split, data.info
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    _seed_everything(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    model = VAE(model_config).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    plateau = PlateauState(cfg.lr)
    start_epoch, best_epoch, best_loss, since_best = 0, None, math.inf, 0
    files.checkpoints.mkdir(exist_ok=True)
    for name in ("last.pt", "best.pt"):
        remove_stale_temporaries(files.checkpoints / name)
    for name in ("history.jsonl", "run.json", "training_curves.png"):
        remove_stale_temporaries(files.root / name)
    history = _History(files.root / "history.jsonl")
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        plateau = PlateauState.from_json(ckpt["plateau"])
        start_epoch = int(ckpt["epoch"]) + 1
        best_epoch = ckpt.get("best_epoch")
        best_loss = float(ckpt.get("best_val_loss", math.inf))
        since_best = int(ckpt.get("since_best", 0))
        restore_rng_state(ckpt["rng"])
        run_info = read_run_record(files.root) if (files.root / "run.json").exists() else {}
        run_info.setdefault("resumes", []).append(
            {
                "epoch": start_epoch,
                "device": str(device),
                "threads": torch.get_num_threads(),
                "dataset": ds_info,
                "provenance": provenance or {},
            }
        )
        history.load(upto_epoch=int(ckpt["epoch"]))
        history.append(
            {
                "event": "resume",
                "from_epoch": start_epoch,
                "time": time.time(),
                "command": (provenance or {}).get("command"),
            }
        )
        log.info("resuming %s at epoch %d", files.root, start_epoch + 1)
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
            "threads": torch.get_num_threads(),  # CPU results depend on it (BatchNorm)
            "provenance": provenance or {},
        }
    _write_text(files.root / "run.json", json.dumps(run_info, indent=2) + "\n")

    budget = runtime.memory_mb << 20
    train_batches = make_batches(
        ds, data.columns, split.train, device, runtime.placement, budget * 9 // 10
    )
    val_batches = make_batches(
        val_ds, data.val_columns, split.validation, device, runtime.placement, budget // 10
    )
    rng = np.random.default_rng([cfg.seed, 1])
    eval_rows = np.sort(
        rng.choice(split.train, min(cfg.eval_train_rows, len(split.train)), replace=False)
    )
    train_eval = torch.from_numpy(read_rows(ds, data.columns, eval_rows)).to(device)
    pool_rows = np.sort(
        rng.choice(split.validation, min(cfg.fidelity_pool, len(split.validation)), replace=False)
    )
    fidelity_pool = torch.from_numpy(read_rows(val_ds, data.val_columns, pool_rows)).to(device)
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
            save_checkpoint(files.checkpoints / "best.pt", payload)
        save_checkpoint(files.checkpoints / "last.pt", payload)
        files.saved_epoch = epoch
        files.place()  # a new run replaces an earlier one only now
        history.path = files.root / "history.jsonl"
        if time.monotonic() - last_plot > 30 or epoch in (start_epoch, cfg.epochs - 1):
            plot_training_curves(history.rows, files.root / "training_curves.png")
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
            plot_training_curves(history.rows, files.root / "training_curves.png")
            break

    files.place()
    model_dir = _publish(
        files.root, files.checkpoints, model_config, cfg, ds_info, history.rows, provenance
    )
    return TrainSummary(
        files.root, epoch + 1 - start_epoch, epoch, best_epoch, best_loss, stopped_early, model_dir
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
        "training_data": {
            **{k: ds_info.get(k) for k in ("path", "n_rows", "ids_sha256", "sources")},
            # a separate validation dataset, or None: a seeded split of the training data
            # (evaluate then knows which rows of it were never trained on)
            "validation": ds_info.get("validation"),
        },
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
