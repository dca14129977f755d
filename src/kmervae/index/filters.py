"""Metadata filters (``--where "length >= 5000 and source = 'marine'"``), checked once.

A filter is parsed into a small tree, its column names are checked against the store's
schema (an unknown column is a one-line error), and then it is either evaluated on NumPy
columns (the exact backend) or written back out as SQL (LanceDB), so every backend sees
the same, validated expression.

Grammar::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | COLUMN OP VALUE
    OP      := = == != <> < <= > >=
    VALUE   := number | 'single-quoted string' | "double-quoted string"
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


@dataclass(frozen=True)
class Compare:
    column: str
    op: str
    value: float | int | str


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
            raise KmervaeError(f"--where {text!r}: cannot read it from {text[pos:].strip()!r}")
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
        return KmervaeError(f"--where {self.text!r}: {why}")

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
        if op_kind != "op":
            raise self.error(f"expected a comparison after {value!r}, got {op!r}")
        op = {"==": "=", "<>": "!="}.get(op, op)
        v_kind, raw = self.take()
        literal: float | int | str
        if v_kind == "num":
            literal = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif v_kind == "str":
            literal = raw[1:-1].replace(raw[0] * 2, raw[0])
        else:
            raise self.error(f"expected a number or a quoted string after {op}, got {raw!r}")
        return Compare(value, op, literal)


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


def _sql(node: Node) -> str:
    if isinstance(node, Compare):
        value = node.value
        literal = "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)
        return f"{node.column} {_SQL_OPS[node.op]} {literal}"
    if node.op == "not":
        return f"(NOT {_sql(node.parts[0])})"
    return "(" + f" {node.op.upper()} ".join(_sql(p) for p in node.parts) + ")"


def _mask(node: Node, column: Callable[[str], np.ndarray]) -> np.ndarray:
    if isinstance(node, Compare):
        values = np.asarray(column(node.column))
        return np.asarray(_OPS[node.op](values, node.value), dtype=bool)
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
                f"--where {text!r}: unknown column {item.column!r} (columns: {known})"
            )
        is_text = schema[item.column] == "string"
        if is_text != isinstance(item.value, str):
            kind = "text" if is_text else "number"
            raise KmervaeError(
                f"--where {text!r}: {item.column} is a {kind} column, compared with {item.value!r}"
            )
    return flt
