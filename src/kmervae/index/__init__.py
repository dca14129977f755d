"""Vector stores behind one protocol (build/add/search/save/open), and the k-NN graph."""

from kmervae.index.filters import Filter, parse_filter
from kmervae.index.protocol import SearchResult, StoreBase, create_index, open_index

__all__ = ["Filter", "SearchResult", "StoreBase", "create_index", "open_index", "parse_filter"]
