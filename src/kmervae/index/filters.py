"""Metadata filters (``--where "length >= 5000 and source = 'marine'"``), checked once.

A filter is parsed into a small tree, its column names are checked against the store's
schema (an unknown column is a one-line error), and then it is either evaluated on NumPy
columns (the exact backend) or written back out as SQL (LanceDB), so every backend sees
the same, validated expression.

Grammar (keywords in any case)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | COLUMN OP VALUE
             | COLUMN ["not"] "in" "(" VALUE ("," VALUE)* ")"
             | COLUMN ["not"] "like" STRING
    OP      := = == != <> < <= > >=
    VALUE   := number | STRING
    STRING  := 'single-quoted' | "double-quoted"   (a doubled quote stands for itself)

``LIKE`` is SQL's: on a text column, ``%`` matches any run of characters, ``_`` any one
character, and a backslash makes the next character literal (``'100\\%'``); the match is
case-sensitive and covers the whole value. ``IN`` holds when the value equals one of the
list's (numbers compare as ``=`` does).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kmervae.errors import KmervaeError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<op><=|>=|==|!=|<>|=|<|>)
      | (?P<paren>[()])
      | (?P<comma>,)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
#: a column name usable in filters and SQL without quoting
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


Literal = float | int | str


@dataclass(frozen=True)
class Compare:
    """``column op value``; ``op`` is one of :data:`_OPS`, or ``in`` / ``not in`` (``value``
    a tuple of literals) or ``like`` / ``not like`` (``value`` a pattern)."""

    column: str
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Logical:
    op: str  # "and", "or", "not"
    parts: tuple[Node, ...]


Node = Compare | Logical


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise KmervaeError(f"filter {text!r}: cannot read it from {text[pos:].strip()!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value.lower() in ("and", "or", "not"):
            kind, value = "kw", value.lower()
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def error(self, why: str) -> KmervaeError:
        return KmervaeError(f"filter {self.text!r}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.error("ends too early")
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.toks:
            raise self.error("empty filter")
        node = self.expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def expr(self) -> Node:
        parts = [self.term()]
        while self.peek() == ("kw", "or"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Logical("or", tuple(parts))

    def term(self) -> Node:
        parts = [self.factor()]
        while self.peek() == ("kw", "and"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else Logical("and", tuple(parts))

    def factor(self) -> Node:
        kind, value = self.take()
        if (kind, value) == ("kw", "not"):
            return Logical("not", (self.factor(),))
        if (kind, value) == ("paren", "("):
            node = self.expr()
            if self.peek() != ("paren", ")"):
                raise self.error("missing ')'")
            self.take()
            return node
        if kind != "name":
            raise self.error(f"expected a column name, got {value!r}")
        op_kind, op = self.take()
        negate = (op_kind, op) == ("kw", "not")
        if negate:
            op_kind, op = self.take()
        word = op.lower() if op_kind == "name" else ""
        if word == "in":
            return Compare(value, "not in" if negate else "in", self.literal_list())
        if word == "like":
            pattern = self.literal("like")
            if not isinstance(pattern, str):
                raise self.error(f"expected a quoted pattern after like, got {pattern!r}")
            return Compare(value, "not like" if negate else "like", pattern)
        if negate or op_kind != "op":
            raise self.error(f"expected a comparison after {value!r}, got {op!r}")
        op = {"==": "=", "<>": "!="}.get(op, op)
        return Compare(value, op, self.literal(op))

    def literal(self, after: str) -> Literal:
        v_kind, raw = self.take()
        if v_kind == "num":
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        if v_kind == "str":
            return raw[1:-1].replace(raw[0] * 2, raw[0])
        raise self.error(f"expected a number or a quoted string after {after}, got {raw!r}")

    def literal_list(self) -> tuple[Literal, ...]:
        if self.take() != ("paren", "("):
            raise self.error("expected '(' after in")
        values = [self.literal("in (")]
        while self.peek() == ("comma", ","):
            self.take()
            values.append(self.literal(","))
        if self.peek() != ("paren", ")"):
            raise self.error("missing ')' after the in list")
        self.take()
        return tuple(values)


def _columns_of(node: Node) -> list[str]:
    if isinstance(node, Compare):
        return [node.column]
    return [c for part in node.parts for c in _columns_of(part)]


@dataclass(frozen=True)
class Filter:
    """A parsed, validated metadata filter.

    Attributes
    ----------
    text : the filter as the user wrote it.
    node : its parse tree.
    columns : the column names it uses.
    """

    text: str
    node: Node

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_columns_of(self.node)))

    def to_sql(self) -> str:
        """The filter as a SQL ``WHERE`` clause (column names checked, literals quoted)."""
        return _sql(self.node)

    def mask(self, column: Callable[[str], np.ndarray]) -> np.ndarray:
        """Evaluate on NumPy columns: ``column(name)`` returns an (N,) array; returns a
        bool (N,) mask."""
        return _mask(self.node, column)


def _sql_literal(value: Literal) -> str:
    return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)


def _sql(node: Node) -> str:
    if isinstance(node, Compare):
        value = node.value
        if isinstance(value, tuple):
            return f"{node.column} {node.op.upper()} ({', '.join(map(_sql_literal, value))})"
        op = node.op.upper() if "like" in node.op else _SQL_OPS[node.op]
        return f"{node.column} {op} {_sql_literal(value)}"
    if node.op == "not":
        return f"(NOT {_sql(node.parts[0])})"
    return "(" + f" {node.op.upper()} ".join(_sql(p) for p in node.parts) + ")"


def like_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a SQL ``LIKE`` pattern (``%``, ``_``, backslash escapes),
    to be matched against a whole value."""
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _compare_mask(node: Compare, values: np.ndarray) -> np.ndarray:
    if node.op in ("in", "not in"):
        assert isinstance(node.value, tuple)
        if values.dtype.kind in "USO":
            hit = np.isin(values.astype(str), [str(v) for v in node.value])
        else:  # each as ``=`` compares it (a float32 column with a literal as float32)
            hit = np.zeros(values.shape, bool)
            for v in node.value:
                hit |= values == v
        return ~hit if node.op == "not in" else hit
    if node.op in ("like", "not like"):
        regex = like_regex(str(node.value))
        hit = np.fromiter(
            (regex.fullmatch(str(v)) is not None for v in values.tolist()), bool, len(values)
        )
        return ~hit if node.op == "not like" else hit
    return np.asarray(_OPS[node.op](values, node.value), dtype=bool)


def _mask(node: Node, column: Callable[[str], np.ndarray]) -> np.ndarray:
    if isinstance(node, Compare):
        return _compare_mask(node, np.asarray(column(node.column)))
    masks = [_mask(p, column) for p in node.parts]
    if node.op == "not":
        return ~masks[0]
    combine = np.logical_and if node.op == "and" else np.logical_or
    out = masks[0]
    for m in masks[1:]:
        out = combine(out, m)
    return out


def parse_filter(text: str, schema: Mapping[str, str]) -> Filter:
    """Parse ``text`` and check it against ``schema`` (column name -> ``int64``,
    ``float32``, ``float64`` or ``string``).

    Raises
    ------
    KmervaeError
        Unreadable filter, an unknown column, or a string compared with a number column
        (or the reverse); one line naming the problem and the columns there are.
    """
    node = _Parser(text).parse()
    flt = Filter(text, node)
    known = ", ".join(sorted(schema))
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Logical):
            stack.extend(item.parts)
            continue
        if item.column not in schema:
            raise KmervaeError(
                f"filter {text!r}: unknown column {item.column!r} (columns: {known})"
            )
        is_text = schema[item.column] == "string"
        kind = "text" if is_text else "number"
        if "like" in item.op and not is_text:
            raise KmervaeError(
                f"filter {text!r}: {item.column} is a number column; like takes a text column"
            )
        values = item.value if isinstance(item.value, tuple) else (item.value,)
        for value in values:
            if is_text != isinstance(value, str):
                raise KmervaeError(
                    f"filter {text!r}: {item.column} is a {kind} column, compared with {value!r}"
                )
    return flt
