"""Metadata filters: parsing, validation, SQL and NumPy evaluation agree."""

from __future__ import annotations

import numpy as np
import pytest

from kmervae.errors import KmervaeError
from kmervae.index.filters import parse_filter

SCHEMA = {"length": "int64", "gc": "float32", "source": "string"}
COLUMNS = {
    "length": np.array([500, 5000, 12000, 7000]),
    "gc": np.array([0.3, 0.5, 0.7, 0.45], np.float32),
    "source": np.array(["marine", "soil", "marine", "it's"]),
}


@pytest.mark.parametrize(
    ("text", "mask", "sql"),
    [
        ("length >= 5000", [0, 1, 1, 1], "length >= 5000"),
        ("length>=5000 AND gc < 0.6", [0, 1, 0, 1], "(length >= 5000 AND gc < 0.6)"),
        ("source == 'marine' or gc > .6", [1, 0, 1, 0], "(source = 'marine' OR gc > 0.6)"),
        ("not (length < 1e4)", [0, 0, 1, 0], "(NOT length < 10000.0)"),
        ("source = 'it''s'", [0, 0, 0, 1], "source = 'it''s'"),
        ('source <> "soil"', [1, 0, 1, 1], "source != 'soil'"),
    ],
)
def test_filters_parse_evaluate_and_print(text, mask, sql):
    flt = parse_filter(text, SCHEMA)
    np.testing.assert_array_equal(flt.mask(COLUMNS.__getitem__), np.array(mask, bool))
    assert flt.to_sql() == sql


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("size > 3", "unknown column 'size' (columns: gc, length, source)"),
        ("length >", "ends too early"),
        ("length >= 5 and", "ends too early"),
        ("length = 'x'", "number column"),
        ("source > 3", "text column"),
        ("(length > 3", "missing ')'"),
        ("length > 3 gc", "unexpected 'gc'"),
        ("length ; 3", "cannot read it"),
        ("", "empty filter"),
        ("5 > length", "expected a column name"),
    ],
)
def test_bad_filters_are_one_line_errors(text, message):
    with pytest.raises(KmervaeError, match=r"^--where ") as err:
        parse_filter(text, SCHEMA)
    assert message in str(err.value) and "\n" not in str(err.value)
