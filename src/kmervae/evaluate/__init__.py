"""Embedding-quality protocols and baselines.

The constants below are shared with the command line, which must start without importing
torch (so they live here, not in the modules that compute).
"""

#: rows sampled from the fitting dataset for a PCA baseline
PCA_FIT_ROWS = 100_000
#: the baseline names every protocol accepts in place of a model path
BASELINE_HELP = "clr, tetra, clrK,K,... (e.g. clr5,4,3,2,1), pca-N (e.g. pca-384)"
#: what evaluation does with evaluated rows the model was trained on (``--training-rows``)
TRAINING_ROWS = ("refuse", "exclude", "include")
