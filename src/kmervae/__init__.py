"""kmervae: multi-scale k-mer profiles of contigs and a VAE space built on them.

The names below are imported when first used, so that ``import kmervae`` (and the command
line's start) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kmervae._version import __version__

if TYPE_CHECKING:
    from kmervae.io.concat import concat_datasets
    from kmervae.io.dataset import ProfileDataset, open_dataset
    from kmervae.kmers.layout import FEATURE_LAYOUT, FeatureLayout
    from kmervae.kmers.profile import profile_fasta, profile_sequence

_WHERE = {
    "FEATURE_LAYOUT": "kmervae.kmers.layout",
    "FeatureLayout": "kmervae.kmers.layout",
    "ProfileDataset": "kmervae.io.dataset",
    "concat_datasets": "kmervae.io.concat",
    "open_dataset": "kmervae.io.dataset",
    "profile_fasta": "kmervae.kmers.profile",
    "profile_sequence": "kmervae.kmers.profile",
}

__all__ = [
    "FEATURE_LAYOUT",
    "FeatureLayout",
    "ProfileDataset",
    "__version__",
    "concat_datasets",
    "open_dataset",
    "profile_fasta",
    "profile_sequence",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'kmervae' has no attribute {name!r}")
