"""Model configuration: a frozen dataclass whose default is the reference architecture."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kmervae.errors import KmervaeError
from kmervae.kmers.layout import FeatureLayout


@dataclass(frozen=True)
class VAEConfig:
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

    @property
    def layout(self) -> FeatureLayout:
        return FeatureLayout(tuple(self.ks))

    @property
    def n_features(self) -> int:
        return self.layout.n_features

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


#: The 5-mer-through-1-mer variant (692 features) with 10 % dropout.
FIVE_MER_CONFIG = VAEConfig(ks=(5, 4, 3, 2, 1), dropout=0.1)
