"""The report's interactive figures (Bokeh, drawn on the canvas backend: headless browsers
and remote desktops often lack WebGL): training curves, the map, histograms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmervae.viz.report.mapview import MapPoints

#: the tools of every figure; the wheel zooms
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
#: line colours of the series of a figure (Bokeh's Category10)
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
#: the Bokeh name of a map figure (scripts find it by it)
MAP_NAME = "kmervae-map"


def _figure(title: str, x_label: str, y_label: str, **kwargs: Any) -> Any:
    from bokeh.plotting import figure

    fig = figure(
        title=title,
        tools=TOOLS,
        active_scroll="wheel_zoom",
        output_backend="canvas",
        sizing_mode="stretch_width",
        **kwargs,
    )
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.toolbar.logo = None
    return fig


def _finite(values: Sequence[Any]) -> list[float]:
    """Floats, NaN for anything missing (Bokeh leaves a gap in the line there)."""
    out = []
    for v in values:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        out.append(float(v) if ok else float("nan"))
    return out


def curve_figure(
    title: str,
    epochs: list[int],
    series: Sequence[tuple[str, list[Any]]],
    *,
    best_epoch: int | None,
    log_y: bool = False,
) -> Any | None:
    """Lines of ``series`` (label, one value per epoch) against the epoch, a dashed line at
    the best epoch, a tooltip per point. None when no series has a value."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.models.annotations import Span

    drawn = [(label, _finite(values)) for label, values in series]
    drawn = [(label, v) for label, v in drawn if any(x == x for x in v)]
    if log_y:  # a log axis cannot show zero or less
        drawn = [(label, [x if x > 0 else float("nan") for x in v]) for label, v in drawn]
    if not drawn:
        return None
    fig = _figure(title, "epoch", title, height=300, y_axis_type="log" if log_y else "linear")
    for (label, values), colour in zip(drawn, SERIES_COLOURS, strict=False):
        # epochs without a value (fidelity is measured every few epochs) are left out, so
        # the line joins the epochs that have one
        kept = [(e, v) for e, v in zip(epochs, values, strict=True) if v == v]
        source = ColumnDataSource(
            {
                "epoch": [e for e, _ in kept],
                "value": [v for _, v in kept],
                "series": [label] * len(kept),
            }
        )
        fig.line("epoch", "value", source=source, color=colour, line_width=2, legend_label=label)
        points = fig.scatter("epoch", "value", source=source, color=colour, size=4)
        fig.add_tools(
            HoverTool(
                renderers=[points],
                tooltips=[("", "@series"), ("epoch", "@epoch"), ("value", "@value{0.[0000]}")],
            )
        )
    if best_epoch is not None:
        fig.add_layout(
            Span(location=best_epoch, dimension="height", line_dash="dashed", line_color="#444")
        )
    fig.legend.location = "top_right"
    fig.legend.click_policy = "hide"
    fig.legend.label_text_font_size = "9pt"
    return fig


def _continuous(
    fig: Any, data: dict[str, Any], field: str, palette: Any, title: str
) -> dict[str, Any]:
    """The colour of a scatter by the numbers of ``data[field]`` (the 1st to 99th
    percentile, as ``kmervae map`` spans them; grey where unknown) and its colour bar."""
    from bokeh.models import LinearColorMapper
    from bokeh.models.annotations import ColorBar

    from kmervae.viz.render import OTHER_GREY

    values = np.asarray(data[field], np.float64)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [1, 99]) if len(finite) else (0.0, 1.0)
    mapper = LinearColorMapper(
        palette=palette, low=float(low), high=float(max(high, low + 1e-6)), nan_color=OTHER_GREY
    )
    fig.add_layout(ColorBar(color_mapper=mapper, title=title, width=12), "right")
    return {"field": field, "transform": mapper}


def map_figure(
    points: MapPoints,
    *,
    title: str,
    axis_labels: tuple[str, str],
    colour: str,
    categories: tuple[np.ndarray, list[str]] | None,
    clusters: list[str | None] | None,
    samples: list[str | None] | None,
    labels: Sequence[tuple[str, list[str | None]]] = (),
    top: int = 20,
) -> Any:
    """A scatter of the drawn points with a tooltip of contig id, length, GC, cluster,
    sample and each label column (``labels``: name, one label per point).

    Coloured by ``categories`` (int32 codes per point, -1 for none, and the names of the
    codes: clusters or labels, see :func:`kmervae.viz.maps.category_codes`) when given: the
    ``top`` most frequent named in a legend titled ``colour`` that hides one on click, the
    rest grey; else by ``colour``: ``length`` (log10 bp) or GC."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.palettes import Magma256, Viridis256

    from kmervae.viz.render import OTHER_GREY, top_categories

    n = len(points.ids)
    gc_pct = points.gc.astype(np.float64) * 100
    data: dict[str, Any] = {
        "x": points.x,
        "y": points.y,
        "id": points.ids,
        "length": np.where(points.lengths >= 0, points.lengths, -1),
        "gc": gc_pct,
        "cluster": [c if c is not None else "–" for c in clusters] if clusters else ["–"] * n,
        "sample": [s if s is not None else "–" for s in samples] if samples else ["–"] * n,
    }
    if colour == "length" and categories is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            data["log_length"] = np.where(
                points.lengths > 0, np.log10(points.lengths.astype(np.float64)), np.nan
            )
    # label columns under fixed names: a column's own name may be anything
    for j, (_, values) in enumerate(labels):
        data[f"label_{j}"] = [v if v is not None else "–" for v in values]
    fig = _figure(title, *axis_labels, height=720, match_aspect=True, name=MAP_NAME)
    size, alpha = (4, 0.8) if n <= 20_000 else (2.5, 0.6)
    renderers = []
    if categories is not None:
        codes, names = categories
        shown, colours, legend = top_categories(codes, names, top)
        groups = [(i, c, legend[i][0]) for i, c in enumerate(colours)]
        if (shown < 0).any():
            groups.insert(0, (-1, OTHER_GREY, legend[-1][0]))
        for code, c, label in groups:
            keep = np.flatnonzero(shown == code)
            source = ColumnDataSource(
                {
                    k: v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep.tolist()]
                    for k, v in data.items()
                }
            )
            renderers.append(
                fig.scatter(
                    "x",
                    "y",
                    source=source,
                    size=size,
                    alpha=alpha,
                    color=c,
                    line_color=None,
                    legend_label=label,
                )
            )
        fig.legend.title = colour
        fig.legend.click_policy = "hide"
        fig.legend.label_text_font_size = "8pt"
        fig.legend.spacing = 0
        fig.add_layout(fig.legend[0], "right")
    else:
        if colour == "length":
            fill = _continuous(fig, data, "log_length", Magma256, "log10 length (bp)")
        else:
            fill = _continuous(fig, data, "gc", Viridis256, "GC (%)")
        renderers.append(
            fig.scatter(
                "x",
                "y",
                source=ColumnDataSource(data),
                size=size,
                alpha=alpha,
                line_color=None,
                color=fill,
            )
        )
    fig.add_tools(
        HoverTool(
            renderers=renderers,
            tooltips=[
                ("contig", "@id"),
                ("length", "@length{0,0} bp"),
                ("GC", "@gc{0.0} %"),
                ("cluster", "@cluster"),
                ("sample", "@sample"),
                *((name, f"@label_{j}") for j, (name, _) in enumerate(labels)),
            ],
        )
    )
    return fig


def histogram_figure(
    title: str,
    x_label: str,
    series: Sequence[tuple[str, np.ndarray]],
    *,
    log_x: bool = False,
    bins: int = 40,
) -> Any | None:
    """Histograms of ``series`` (label, values) on shared bins (logarithmic ones with
    ``log_x``), drawn as steps over each other; None when there is no value."""
    from bokeh.models import ColumnDataSource, HoverTool

    cleaned = [(label, np.asarray(v, np.float64)) for label, v in series]
    cleaned = [(label, v[np.isfinite(v) & ((v > 0) if log_x else True)]) for label, v in cleaned]
    cleaned = [(label, v) for label, v in cleaned if len(v)]
    if not cleaned:
        return None
    everything = np.concatenate([v for _, v in cleaned])
    low, high = float(everything.min()), float(everything.max())
    if high <= low:
        high = low + 1.0
    edges = (
        np.geomspace(low, high * 1.0001, bins + 1) if log_x else np.linspace(low, high, bins + 1)
    )
    fig = _figure(title, x_label, "clusters", height=300, x_axis_type="log" if log_x else "linear")
    for (label, values), colour in zip(cleaned, SERIES_COLOURS, strict=False):
        counts, _ = np.histogram(values, edges)
        source = ColumnDataSource(
            {"left": edges[:-1], "right": edges[1:], "top": counts, "series": [label] * bins}
        )
        fig.quad(
            left="left",
            right="right",
            top="top",
            bottom=0,
            source=source,
            fill_color=colour,
            fill_alpha=0.35 if len(cleaned) > 1 else 0.6,
            line_color=colour,
            legend_label=label,
        )
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("", "@series"),
                (x_label, "@left{0.[00]} – @right{0.[00]}"),
                ("clusters", "@top"),
            ]
        )
    )
    fig.y_range.start = 0
    fig.legend.location = "top_right"
    fig.legend.click_policy = "hide"
    return fig
