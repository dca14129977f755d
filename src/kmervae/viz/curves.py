"""Training curves of a run, redrawn from its history after every epoch (epochs counted
from 1; a history written when they were counted from 0 is read as if it had not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kmervae.io.atomic import atomic_file, naming_oserrors
from kmervae.model.run_folder import history_from_one


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Write a PNG of losses, KL, per-group MSE, learning rate and fidelity (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [h for h in history_from_one(history) if "epoch" in h and "val_loss" in h]
    if not rows:
        return
    epochs = [h["epoch"] for h in rows]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0, 0]
    for key, label in (
        ("train_loss", "train (training mode)"),
        ("train_loss_eval", "train (eval mode)"),
        ("val_loss", "validation"),
    ):
        ax.plot(epochs, [h.get(key, float("nan")) for h in rows], label=label)
    ax.set_title("loss (MSE x F + beta KL)")
    ax.set_yscale("log")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(epochs, [h.get("val_recon", float("nan")) for h in rows], label="validation")
    ax.plot(epochs, [h.get("train_recon", float("nan")) for h in rows], label="train")
    ax.set_title("reconstruction (MSE x F)")
    ax.set_yscale("log")
    ax.legend()
    ax = axes[0, 2]
    ax.plot(epochs, [h.get("val_kl", float("nan")) for h in rows], label="KL (validation)")
    ax.plot(epochs, [h.get("kl_weight", float("nan")) for h in rows], label="KL weight")
    ax.set_title("KL")
    ax.legend()
    ax = axes[1, 0]
    groups = sorted({g for h in rows for g in h.get("val_mse_per_k", {})}, key=int, reverse=True)
    for g in groups:
        ax.plot(
            epochs,
            [h.get("val_mse_per_k", {}).get(g, float("nan")) for h in rows],
            label=f"{g}-mers",
        )
    ax.set_title("validation MSE per k-group")
    ax.set_yscale("log")
    if groups:
        ax.legend()
    ax = axes[1, 1]
    ax.plot(epochs, [h.get("lr", float("nan")) for h in rows])
    ax.set_title("learning rate")
    ax.set_yscale("log")
    ax = axes[1, 2]
    fid = [(h["epoch"], h["fidelity_spearman"]) for h in rows if "fidelity_spearman" in h]
    if fid:
        ax.plot([e for e, _ in fid], [s for _, s in fid], marker="o")
    ax.set_title("local-distance fidelity (Spearman)")
    for a in axes.flat:
        a.set_xlabel("epoch")
    fig.tight_layout()
    try:
        with naming_oserrors(path), atomic_file(path, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        plt.close(fig)
