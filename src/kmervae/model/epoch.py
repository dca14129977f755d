"""One epoch of training: the state a run carries from epoch to epoch (:class:`Progress`),
what the loop works with (:class:`Session`), the batch loop with its schedules
(:func:`train_epoch`), and the eval-mode losses and fidelity measured after it.

Epochs are counted from 1; the schedules of :mod:`kmervae.model.schedules`, the per-epoch
seeds and the KL warm-up take the 0-based index of an epoch (``epoch - 1``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from kmervae.errors import KmervaeError
from kmervae.evaluate.fidelity import local_distance_fidelity
from kmervae.model.config import TrainConfig, VAEConfig
from kmervae.model.run_folder import RunFiles, RunHistory
from kmervae.model.schedules import PlateauState, cosine_lr, kl_weight, plateau_step
from kmervae.model.vae import VAE, vae_loss
from kmervae.model.views import LengthNoise, consistency_term, noisy_batch

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where a run stands: the last epoch done (counted from 1; 0 before the first), the
    best epoch after the KL warm-up with its validation loss, the epochs since, the plateau
    schedule, and whether early stopping ended the run."""

    plateau: PlateauState
    epoch: int = 0
    best_epoch: int | None = None
    best_loss: float = math.inf
    since_best: int = 0
    stopped_early: bool = False


@dataclass
class Session:
    """What the epoch loop works with: the model (``step_model``: compiled when asked), the
    optimiser, the batch sources, fixed samples of training rows (eval-mode loss) and of
    validation rows (fidelity), and where the run is written."""

    model: VAE
    step_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_batches: Any
    val_batches: Any
    train_eval: torch.Tensor
    fidelity_pool: torch.Tensor
    eval_batch: int
    device: torch.device
    use_bf16: bool
    model_config: VAEConfig
    cfg: TrainConfig
    dataset_record: dict[str, Any]
    files: RunFiles
    history: RunHistory
    last_plot: float = -math.inf  # the PNG is redrawn at most every 30 s, and first and last


def epoch_lr(cfg: TrainConfig, plateau: PlateauState, index: int) -> float:
    """The learning rate of the epoch of 0-based ``index`` under the run's schedule."""
    if cfg.schedule == "cosine":
        return cosine_lr(
            index, lr=cfg.lr, min_lr=cfg.min_lr, epochs=cfg.epochs, warmup_epochs=cfg.lr_warmup
        )
    if cfg.schedule == "plateau":
        return plateau.lr
    return cfg.lr


def train_epoch(
    session: Session, progress: Progress, epoch: int, started: float
) -> tuple[dict[str, Any], bool]:
    """Train and evaluate epoch ``epoch`` (counted from 1); updates ``progress`` (the
    plateau schedule, the best epoch) and returns the epoch's history line and whether the
    epoch is the best so far."""
    model, cfg, config, device = session.model, session.cfg, session.model_config, session.device
    index = epoch - 1  # the schedules, seeds and KL warm-up count epochs from 0
    lr = epoch_lr(cfg, progress.plateau, index)
    for group in session.optimizer.param_groups:
        group["lr"] = lr
    klw = kl_weight(index, cfg.kl_warmup)
    torch.manual_seed(cfg.seed * 1_000_003 + index)
    model.train()
    noise = LengthNoise.of(cfg)
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    n_seen = 0
    for batch in session.train_batches.epoch(
        cfg.batch_size, seed=cfg.seed * 7919 + index, drop_last=True
    ):
        _, _, losses = forward(
            session.step_model, batch, config, klw, session.use_bf16, noise=noise
        )
        session.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        session.optimizer.step()
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
            f"epoch {epoch}: the training loss is not finite; lower the learning rate"
        )
    model.eval()
    val = evaluate_loss(
        model,
        session.val_batches.epoch(session.eval_batch, seed=None, drop_last=False),
        config,
        session.use_bf16,
        device,
    )
    train_eval_metrics = evaluate_loss(
        model,
        iter(torch.split(session.train_eval, session.eval_batch)),
        config,
        session.use_bf16,
        device,
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
    if cfg.fidelity_every > 0 and (epoch % cfg.fidelity_every == 0 or epoch == cfg.epochs):
        fid = fidelity_of(model, session.fidelity_pool, cfg.seed)
        if fid is not None:
            record.update(
                fidelity_spearman=fid["spearman"],
                fidelity_pearson=fid["pearson"],
                fidelity_pool=fid["pool"],
            )
    # the KL warm-up epochs (artificially low loss) never count for best or plateau
    if cfg.schedule == "plateau":
        progress.plateau = plateau_step(
            progress.plateau,
            val["loss"],
            index,
            ignore_before=cfg.kl_warmup,
            patience=cfg.plateau_patience,
            factor=cfg.plateau_factor,
            min_lr=cfg.min_lr,
        )
        if progress.plateau.lr != lr:
            log.info(
                "epoch %d: learning rate %.3g -> %.3g (no validation gain in %d epochs)",
                epoch,
                lr,
                progress.plateau.lr,
                cfg.plateau_patience,
            )
    past_warmup = epoch > cfg.kl_warmup
    improved = past_warmup and val["loss"] < progress.best_loss
    if improved:
        progress.best_loss, progress.best_epoch, progress.since_best = val["loss"], epoch, 0
    elif past_warmup:
        progress.since_best += 1
    progress.epoch = epoch
    seconds = time.perf_counter() - started
    record.update(
        seconds=seconds,
        train_seconds=train_seconds,
        samples_per_s=n_seen / max(train_seconds, 1e-9),
        epoch_samples_per_s=n_seen / max(seconds, 1e-9),
        best=improved,
    )
    return record, improved


def forward(
    model: torch.nn.Module,
    batch: torch.Tensor,
    config: VAEConfig,
    klw: float,
    use_bf16: bool,
    noise: LengthNoise | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One pass of ``batch`` (float32, n x F raw profiles) through ``model`` (under bf16
    autocast when asked): the reconstruction, its target (the CLR rows) and the loss parts
    (:func:`kmervae.model.vae.vae_loss` with KL weight ``klw``). With ``noise`` the encoder
    reads length-noise views of some rows (:func:`kmervae.model.views.noisy_batch`) and,
    with a consistency weight, the loss gains its term (also reported as ``consistency``)."""
    seen, twins = None, None
    if noise is not None:
        batch, seen, twins = noisy_batch(batch, config.layout, noise)
    with torch.autocast(device_type=batch.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        recon, target, mu, logvar = model(batch, seen)
        losses = vae_loss(
            recon,
            target,
            mu,
            logvar,
            beta=config.beta,
            kl_weight=klw,
            distance_weight=config.distance_weight,
            distance_locality=config.distance_locality,
        )
        if twins is not None and noise is not None and noise.consistency_weight > 0:
            n_clean = batch.shape[0] - twins.numel()
            term = consistency_term(mu[n_clean:], mu[twins])
            losses["consistency"] = term
            losses["loss"] = losses["loss"] + noise.consistency_weight * target.shape[1] * term
    return recon, target, losses


def evaluate_loss(
    model: VAE, batches: Any, config: VAEConfig, use_bf16: bool, device: torch.device
) -> dict[str, Any]:
    """Eval-mode loss with the full KL weight, its parts, and the MSE per k-group."""
    layout = config.layout
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    per_column = torch.zeros(layout.n_features, device=device, dtype=torch.float64)
    n = 0
    with torch.no_grad():
        for batch in batches:
            recon, target, losses = forward(model, batch, config, 1.0, use_bf16)
            rows = batch.shape[0]
            sums += torch.stack([losses["loss"], losses["recon"], losses["kl"]]).double() * rows
            per_column += ((recon.float() - target) ** 2).sum(dim=0).double()
            n += rows
    loss, recon_mse, kl = (sums / max(n, 1)).tolist()
    per_col = (per_column / max(n, 1)).cpu().numpy()
    mse_per_k = {str(k): float(per_col[layout.group_slice(k)].mean()) for k in layout.ks}
    return {"loss": loss, "recon": recon_mse, "kl": kl, "mse_per_k": mse_per_k}


def fidelity_of(model: VAE, pool: torch.Tensor, seed: int) -> dict[str, Any] | None:
    """Local-distance fidelity of the model's mu on the fixed validation ``pool`` (float32,
    n x F raw profiles): 100 queries x 50 neighbours; None for a pool under 10 rows."""
    if pool.shape[0] < 10:
        return None
    with torch.no_grad():
        clr = model.encoder.clr(pool)
        mu, _ = model.encoder.forward_clr(clr)
    return local_distance_fidelity(
        mu.float().cpu().numpy(), clr.cpu().numpy(), n_queries=100, k=50, seed=seed
    )
