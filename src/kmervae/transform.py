"""Per-group CLR with a Jeffreys pseudocount: the only definition, used everywhere.

For each k-group of width n: ``x <- log(x + 0.5 / n)``, then ``x <- x - mean(x over the
group)``. Computed in float32 on whatever device the batch lives on, batch by batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kmervae.kmers.layout import FeatureLayout

PSEUDOCOUNT = 0.5  # Jeffreys prior: 0.5 / n added to every frequency of an n-column group


class CLRTransform(nn.Module):
    """Per-group centred log-ratio of frequency profiles.

    Input: float tensor (batch x F), any float dtype (computed in float32).
    Output: float32 (batch x F).
    """

    pseudocount: torch.Tensor

    def __init__(self, layout: FeatureLayout):
        super().__init__()
        self.layout = layout
        self.widths = list(layout.widths)
        groups = np.repeat(np.arange(len(layout.ks)), layout.widths)
        widths = np.asarray(layout.widths, dtype=np.float64)
        # persistent=False: derived from the layout, never stored in model files
        self.register_buffer(
            "pseudocount",
            torch.tensor(PSEUDOCOUNT / widths[groups], dtype=torch.float32),
            persistent=False,
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


def clr(x: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    """NumPy entry point to :class:`CLRTransform`: float32 (n x F) -> float32 (n x F)."""
    with torch.no_grad():
        return CLRTransform(layout)(torch.from_numpy(np.asarray(x, np.float32))).numpy()
