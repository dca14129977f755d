"""The ``--columns`` TSV: types, missing ids, and the names it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from kmervae.errors import InputError
from kmervae.index.ingest import read_columns_tsv


def test_columns_tsv_types_and_missing_ids(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("id\ttaxon\tdepth\tbins\nc1\tE. coli\t3.5\t7\nc2\t\t\t8\n")
    extra = read_columns_tsv(tsv)
    assert extra.schema == {"taxon": "string", "depth": "float64", "bins": "float64"}
    got = extra.for_ids(["c2", "zz", "c1"])
    assert list(got["taxon"]) == ["", "", "E. coli"]
    np.testing.assert_array_equal(got["depth"], [np.nan, np.nan, 3.5])
    np.testing.assert_array_equal(got["bins"], [8, np.nan, 7])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id\tlength\nc1\t5\n", "column 'length' cannot be used"),
        ("id\tmy col\nc1\t5\n", "column 'my col' cannot be used"),
        ("id\tx\nc1\t5\nc1\t6\n", "id 'c1' appears twice"),
        ("id\nc1\n", "at least one column"),
    ],
)
def test_bad_columns_tsv(tmp_path, text, message):
    tsv = tmp_path / "c.tsv"
    tsv.write_text(text)
    with pytest.raises(InputError, match=message):
        read_columns_tsv(tsv)
