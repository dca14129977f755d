"""kmervae: multi-scale k-mer profiles of contigs and a VAE space built on them."""

from kmervae._version import __version__
from kmervae.io.concat import concat_datasets
from kmervae.io.dataset import ProfileDataset, open_dataset
from kmervae.kmers.layout import FEATURE_LAYOUT, FeatureLayout
from kmervae.kmers.profile import profile_fasta, profile_sequence

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
