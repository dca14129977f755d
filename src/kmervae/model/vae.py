"""The VAE network. The CLR transform is part of the model and runs on its device."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import VAEConfig
from kmervae.transform import pseudocounts


class CLRTransform(nn.Module):
    """Per-group centred log-ratio of frequency profiles (:mod:`kmervae.transform`), on the
    model's device.

    Input: float tensor (batch x F), any float dtype (computed in float32).
    Output: float32 (batch x F).
    """

    pseudocount: torch.Tensor

    def __init__(self, layout: FeatureLayout):
        super().__init__()
        self.layout = layout
        self.widths = list(layout.widths)
        # persistent=False: derived from the layout, never stored in model files
        self.register_buffer(
            "pseudocount", torch.from_numpy(pseudocounts(layout)), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # always float32, also inside a mixed-precision (autocast) region
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = torch.log(x.float() + self.pseudocount)
            groups = y.split(self.widths, dim=1)
            if torch.is_inference_mode_enabled() and not torch.jit.is_tracing():
                for g in groups:  # inference: centre each group in place, no extra copy
                    g.sub_(g.mean(dim=1, keepdim=True))
                return y
            return torch.cat([g - g.mean(dim=1, keepdim=True) for g in groups], dim=1)


def _block(n_in: int, n_out: int, config: VAEConfig) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if config.batchnorm:
        layers.append(nn.BatchNorm1d(n_out, eps=config.bn_eps, momentum=config.bn_momentum))
    layers.append(nn.LeakyReLU(config.leaky_slope))
    if config.dropout > 0:
        layers.append(nn.Dropout(config.dropout))
    return layers


class Encoder(nn.Module):
    """Profiles (batch x F, frequencies) -> (mu, log var), each float32 (batch x latent)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.clr = CLRTransform(config.layout)
        layers: list[nn.Module] = []
        widths = (config.n_features, *config.hidden)
        for n_in, n_out in itertools.pairwise(widths):
            layers += _block(n_in, n_out, config)
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(widths[-1], config.latent)
        self.logvar = nn.Linear(widths[-1], config.latent)

    def forward_clr(self, x_clr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode already CLR-transformed rows."""
        h = self.body(x_clr)
        logvar = torch.clamp(self.logvar(h), self.config.logvar_min, self.config.logvar_max)
        return self.mu(h), logvar

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_clr(self.clr(x))


class Decoder(nn.Module):
    """Latent (batch x latent) -> reconstructed CLR profile (batch x F), linear output."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        layers: list[nn.Module] = []
        widths = (config.latent, *reversed(config.hidden))
        for n_in, n_out in itertools.pairwise(widths):
            layers += _block(n_in, n_out, config)
        layers.append(nn.Linear(widths[-1], config.n_features))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class VAE(nn.Module):
    """Encoder + decoder. ``forward`` returns (reconstruction, CLR target, mu, log var);
    with ``seen`` (a length-noise view of ``x``, :mod:`kmervae.model.views`) the encoder
    reads ``seen`` and the target stays the CLR of ``x``."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def forward(
        self, x: torch.Tensor, seen: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        target = self.encoder.clr(x)
        mu, logvar = self.encoder.forward_clr(target if seen is None else self.encoder.clr(seen))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), target, mu, logvar


def distance_term(mu: torch.Tensor, target: torch.Tensor, locality: float = 0.1) -> torch.Tensor:
    """How far latent distances within a batch are from proportional to CLR distances,
    weighted towards close pairs (those the embedding's neighbourhoods are made of).

    With D_z and D_x the pairwise Euclidean distances of ``mu`` and of the CLR ``target``,
    each divided by its mean over the batch's pairs, the term is the mean over pairs of
    w (D_z - D_x)^2 with w = exp(-D_x / locality), normalised to mean 1. Scale-free: it
    asks for distances in proportion, not for a scale, so it does not fight the KL term.
    """
    n = mu.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=mu.device)
    dz = torch.cdist(mu.float(), mu.float())[off]
    dx = torch.cdist(target.float(), target.float())[off]
    dz = dz / dz.mean().clamp_min(1e-12)
    dx = dx / dx.mean().clamp_min(1e-12)
    # shifted by the smallest distance before exp: the same weights after normalising,
    # without underflow to zero when every pair is far
    w = torch.exp(-(dx - dx.min()) / locality)
    w = w / w.mean()
    return torch.mean(w * (dz - dx) ** 2)


def vae_loss(
    recon: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float,
    kl_weight: float,
    distance_weight: float = 0.0,
    distance_locality: float = 0.1,
) -> dict[str, torch.Tensor]:
    """Loss of one batch: mean squared error over features x F, plus beta x KL, plus
    ``distance_weight`` x F x :func:`distance_term` when that weight is set.

    Returns a dict with ``loss`` (what is optimised), ``recon`` (MSE x F, per row) and
    ``kl`` (KL divergence to N(0, I), summed over latent dims, mean over rows).
    """
    n_features = target.shape[1]
    recon_term = torch.mean((recon.float() - target) ** 2) * n_features
    kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
    loss = recon_term + beta * kl_weight * kl
    if distance_weight > 0:
        loss = loss + distance_weight * n_features * distance_term(mu, target, distance_locality)
    return {"loss": loss, "recon": recon_term, "kl": kl}
