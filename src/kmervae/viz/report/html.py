"""The page itself: one HTML file with everything inline (CSS, BokehJS, the figures' data,
PNG images as ``data:`` URIs), so that it opens with no network and can be mailed or
archived as it is.

Sections are built as HTML text with Bokeh figures in them (:class:`Page`); the figures are
serialised together by :func:`bokeh.embed.components` into one Bokeh document, and BokehJS
is written into the page from the installed Bokeh (:class:`bokeh.resources.Resources` in
``inline`` mode, only the core component: the report uses no widgets and no WebGL).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kmervae.io.manifest import json_default

#: the id of the ``<script type="application/json">`` block that holds the provenance
PROVENANCE_ID = "kmervae-provenance"


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML (attributes included)."""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 3) -> str:
    """A number for a table: integers with thousands separators, others with ``digits``
    significant decimals; None and NaN as a dash; anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 10 ** (-digits)):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    return str(value)


def percent(value: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return "–"
    return f"{100 * value:.{digits}f} %"


def png_data_uri(data: bytes) -> str:
    """A PNG as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image(data: bytes, alt: str, caption: str | None = None) -> str:
    """A PNG embedded in a ``<figure>``, with a caption."""
    text = f'<figure><img src="{png_data_uri(data)}" alt="{esc(alt)}">'
    if caption:
        text += f"<figcaption>{caption}</figcaption>"
    return text + "</figure>"


def json_script(record: Any, element_id: str = PROVENANCE_ID) -> str:
    """``record`` as a ``<script type="application/json">`` block; ``</`` is written
    ``<\\/`` so that no value can close the script element."""
    text = json.dumps(record, indent=1, default=json_default, allow_nan=False)
    text = text.replace("</", "<\\/").replace("<!--", "<\\!--")
    return f'<script type="application/json" id="{esc(element_id)}">\n{text}\n</script>'


# -------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` of each row's dict, its heading, how a value is written
    (``fmt``) and which values are better (``"high"``, ``"low"`` or None: not compared).
    ``text``: the key of a row's ready-made text for the cell, where it says more than the
    value compared (a confidence interval, a headline)."""

    key: str
    label: str
    better: str | None = None
    fmt: Callable[[Any], str] = number
    text: str | None = None


def _comparable(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if value != value else float(value)


def best_rows(rows: Sequence[dict[str, Any]], column: Column, group: str | None) -> set[int]:
    """Indices of the rows holding the best value of ``column`` (within each group of rows
    that share the value of the key ``group``); none where fewer than two rows have a
    value or all values are equal."""
    if column.better is None:
        return set()
    groups: dict[Any, list[tuple[int, float]]] = {}
    for i, row in enumerate(rows):
        value = _comparable(row.get(column.key))
        if value is not None:
            groups.setdefault(row.get(group) if group else None, []).append((i, value))
    best: set[int] = set()
    for members in groups.values():
        values = [v for _, v in members]
        if len(values) < 2 or min(values) == max(values):
            continue
        target = max(values) if column.better == "high" else min(values)
        best.update(i for i, v in members if v == target)
    return best


def table(
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    *,
    group: str | None = None,
    caption: str | None = None,
    css_class: str = "",
) -> str:
    """An HTML table of ``rows`` (dicts); the best value of each compared column is
    highlighted (class ``best``), within groups of rows sharing ``row[group]`` if given.
    A row's ``_title`` key, if any, becomes the tooltip of its first cell."""
    best = {c.key: best_rows(rows, c, group) for c in columns}
    head = "".join(
        f'<th title="{"higher is better" if c.better == "high" else "lower is better"}">'
        f"{esc(c.label)} {'↑' if c.better == 'high' else '↓'}</th>"
        if c.better
        else f"<th>{esc(c.label)}</th>"
        for c in columns
    )
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, c in enumerate(columns):
            shown = row.get(c.text) if c.text and row.get(c.text) is not None else None
            text = esc(shown if shown is not None else c.fmt(row.get(c.key)))
            classes = ["num"] if _comparable(row.get(c.key)) is not None else []
            if i in best[c.key]:
                classes.append("best")
            attrs = f' class="{" ".join(classes)}"' if classes else ""
            if j == 0 and row.get("_title"):
                attrs += f' title="{esc(row["_title"])}"'
            cells.append(f"<td{attrs}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{caption}</caption>" if caption else ""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return (
        f'<div class="table-wrap"><table{cls}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """A two-column definition table of (name, value text, already escaped) pairs."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


# -------------------------------------------------------------------------------- the page


@dataclass
class Section:
    """A section of the report: an anchor, a heading, and its body (HTML text in which
    Bokeh figures stand as placeholders, see :meth:`Page.figure`)."""

    anchor: str
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)


class Page:
    """The sections of a report and the Bokeh figures they hold.

    :meth:`figure` returns a placeholder for a figure; :meth:`render` serialises every
    figure into one Bokeh document and puts each one's ``<div>`` in its place.
    """

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.models: list[Any] = []

    def section(self, anchor: str, title: str) -> Section:
        section = Section(anchor, title)
        self.sections.append(section)
        return section

    def figure(self, model: Any) -> str:
        self.models.append(model)
        return f"\x00figure-{len(self.models) - 1}\x00"

    def render(self, title: str, header: str, record: dict[str, Any]) -> str:
        """The whole HTML page; ``header``: the HTML under the title; ``record``: the
        provenance written into the page as JSON."""
        body = "\n".join(
            f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>\n'
            + "\n".join(s.parts)
            + "</section>"
            for s in self.sections
        )
        bokeh_head = script = ""
        if self.models:
            from bokeh.embed import components
            from bokeh.resources import Resources

            script, divs = components(self.models)
            for i, div in enumerate(divs):
                body = body.replace(f"\x00figure-{i}\x00", f'<div class="bk-figure">{div}</div>')
            resources = Resources(mode="inline", components=["bokeh"])
            bokeh_head = resources.render_js() + resources.render_css()
        version = record.get("provenance", {}).get("kmervae_version", "")
        nav = " · ".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in self.sections)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kmervae {esc(version)}">
<title>{esc(title)}</title>
<style>{CSS}</style>
{bokeh_head}
</head>
<body>
<header>
<h1>{esc(title)}</h1>
{header}
<nav>{nav}</nav>
</header>
<main>
{body}
</main>
{json_script(record)}
{script}
</body>
</html>
"""


CSS = """
:root { --fg: #1d2125; --muted: #5f6b76; --line: #d7dde3; --best: #dff3e4; --accent: #0f6fa8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 6px; font-size: 26px; }
h2 { margin: 36px 0 10px; font-size: 21px; border-bottom: 1px solid var(--line); }
h3 { margin: 22px 0 8px; font-size: 17px; }
nav { margin: 10px 0 14px; color: var(--muted); }
a { color: var(--accent); text-decoration: none; }
p, li { max-width: 75em; }
.muted, figcaption, caption { color: var(--muted); font-size: 13px; }
caption { caption-side: bottom; text-align: left; padding-top: 4px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; overflow-wrap: anywhere; }
.table-wrap { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 9px; text-align: left;
  vertical-align: top; }
thead th { background: #f3f5f7; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: var(--best); font-weight: 600; }
table.kv th { width: 13em; font-weight: 600; background: none; white-space: nowrap; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 14px; }
.bk-figure { margin: 8px 0; }
.input { border: 1px solid var(--line); border-radius: 4px; padding: 4px 12px 10px;
  margin: 12px 0; }
"""
