"""Clustering contigs: graphs from the k-NN graph, MCL, Leiden, HDBSCAN, RCL consensus,
cluster files, statistics and bins."""
