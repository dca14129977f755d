"""Metadata filters: parsing, validation, SQL and NumPy evaluation agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    with pytest.raises(KmervaeError, match=r"^(filter|--where) ") as err:
        parse_filter(text, SCHEMA)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- in and like -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "mask", "sql"),
    [
        ("source in ('marine', 'it''s')", [1, 0, 1, 1], "source IN ('marine', 'it''s')"),
        ("source NOT IN ('marine')", [0, 1, 0, 1], "source NOT IN ('marine')"),
        ("length in (500, 7000)", [1, 0, 0, 1], "length IN (500, 7000)"),
        ("gc in (0.5, 0.45)", [0, 1, 0, 1], "gc IN (0.5, 0.45)"),
        ("source like 'mar%'", [1, 0, 1, 0], "source LIKE 'mar%'"),
        ("source like '_oil'", [0, 1, 0, 0], "source LIKE '_oil'"),
        ("source not like '%i%'", [0, 0, 0, 0], "source NOT LIKE '%i%'"),
        (
            "not source Like 'it%' and length in (500)",
            [1, 0, 0, 0],
            "((NOT source LIKE 'it%') AND length IN (500))",
        ),
    ],
)
def test_in_and_like_parse_evaluate_and_print(text, mask, sql):
    flt = parse_filter(text, SCHEMA)
    np.testing.assert_array_equal(flt.mask(COLUMNS.__getitem__), np.array(mask, bool))
    assert flt.to_sql() == sql


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source in 'a'", "expected '(' after in"),
        ("source in ('a' 'b')", "missing ')' after the in list"),
        ("source in ()", "expected a number or a quoted string"),
        ("length in ('a')", "number column, compared with 'a'"),
        ("source in ('a', 3)", "text column, compared with 3"),
        ("length like '5%'", "like takes a text column"),
        ("source like 5", "expected a quoted pattern"),
        ("source not = 'a'", "expected a comparison"),
        ("size in (1)", "unknown column 'size'"),
    ],
)
def test_bad_in_and_like_are_one_line_errors(text, message):
    with pytest.raises(KmervaeError, match=r"^(filter|--where) ") as err:
        parse_filter(text, SCHEMA)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- the naive twin: filters built at random, evaluated row by row in plain Python ----------
WORDS = ["marine", "soil", "it's", "a%b", "a_b", "axb", "A%B", "a\\b", "", "mar"]


def naive_like(value: str, pattern: str) -> bool:
    """SQL LIKE by recursion over the pattern (no regular expressions)."""
    if not pattern:
        return not value
    head, rest = pattern[0], pattern[1:]
    if head == "\\" and rest:
        return bool(value) and value[0] == rest[0] and naive_like(value[1:], rest[1:])
    if head == "%":
        return any(naive_like(value[i:], rest) for i in range(len(value) + 1))
    if head == "_":
        return bool(value) and naive_like(value[1:], rest)
    return bool(value) and value[0] == head and naive_like(value[1:], rest)


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@st.composite
def filters(draw, depth: int = 2):
    """(filter text, function of a row dict -> bool)."""
    kind = draw(st.sampled_from(["cmp", "in", "like"] + (["and", "or", "not"] if depth else [])))
    if kind in ("and", "or"):
        (ta, fa), (tb, fb) = draw(filters(depth - 1)), draw(filters(depth - 1))
        if kind == "and":
            return f"({ta} and {tb})", lambda r: fa(r) and fb(r)
        return f"({ta} or {tb})", lambda r: fa(r) or fb(r)
    if kind == "not":
        t, f = draw(filters(depth - 1))
        return f"not ({t})", lambda r: not f(r)
    negate = draw(st.booleans())
    if kind == "like":
        pattern = draw(st.text(alphabet="ma%_\\'rbx", max_size=5))
        if pattern.endswith("\\"):
            pattern = pattern[:-1]
        word = "not like" if negate else "like"
        return (
            f"source {word} {quote(pattern)}",
            lambda r: naive_like(r["source"], pattern) != negate,
        )
    if kind == "in":
        if draw(st.booleans()):
            values = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
            text = ", ".join(quote(v) for v in values)
            return (
                f"source {'not in' if negate else 'in'} ({text})",
                lambda r: (r["source"] in values) != negate,
            )
        numbers = draw(st.lists(st.integers(0, 9).map(lambda i: i * 1000), min_size=1, max_size=3))
        text = ", ".join(map(str, numbers))
        return (
            f"length {'not in' if negate else 'in'} ({text})",
            lambda r: (r["length"] in numbers) != negate,
        )
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    limit = draw(st.integers(0, 9)) * 1000
    python = {
        "=": "__eq__",
        "!=": "__ne__",
        "<": "__lt__",
        "<=": "__le__",
        ">": "__gt__",
        ">=": "__ge__",
    }[op]
    return f"length {op} {limit}", lambda r: getattr(r["length"], python)(limit)


TWIN_ROWS = [{"length": (i * 7 % 10) * 1000, "source": WORDS[i % len(WORDS)]} for i in range(30)]
TWIN_COLUMNS = {
    "length": np.array([r["length"] for r in TWIN_ROWS], np.int64),
    "source": np.array([r["source"] for r in TWIN_ROWS]),
}


@settings(max_examples=300, deadline=None)
@given(filters())
def test_filters_agree_with_a_row_by_row_evaluation(case):
    text, naive = case
    flt = parse_filter(text, {"length": "int64", "source": "string"})
    expected = np.array([naive(r) for r in TWIN_ROWS], bool)
    np.testing.assert_array_equal(flt.mask(TWIN_COLUMNS.__getitem__), expected, err_msg=text)


@pytest.fixture(scope="module")
def twin_stores(tmp_path_factory):
    from kmervae.index import create_index, open_index

    tmp = tmp_path_factory.mktemp("twin")
    n = len(TWIN_ROWS)
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    stores = {}
    for backend in ("exact", "faiss", "lance"):
        schema = {"length": "int64", "source": "string"}
        with create_index(tmp / backend, backend=backend, dim=4, schema=schema) as store:
            store.add([f"c{i}" for i in range(n)], x, dict(TWIN_COLUMNS))
            store.save({"action": "build"})
        stores[backend] = open_index(tmp / backend)
    return x, stores


@settings(max_examples=25, deadline=None)
@given(filters(depth=1))
def test_every_backend_applies_in_and_like_as_the_twin(twin_stores, case):
    text, naive = case
    x, stores = twin_stores
    expected = {i for i, r in enumerate(TWIN_ROWS) if naive(r)}
    for backend, store in stores.items():
        found = store.search(x[:1], len(TWIN_ROWS), where=text).rows
        assert set(found[found >= 0].tolist()) == expected, (backend, text)
