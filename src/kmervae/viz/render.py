"""Points at any N: datashader turns them into pixels, matplotlib draws the figure around.

Millions of points are aggregated onto a square canvas by datashader (counts, a mean value
or counts per category), shaded, and shown by matplotlib with ``imshow`` on equal axes, with
a colour bar or a legend; figures are saved as PNG and/or PDF. Images are arrays whose row 0
is the lowest y (``imshow(..., origin="lower")``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: canvas pixels per side of a map or overlay
CANVAS = 800
#: rows per block when scanning memory-mapped coordinates
BLOCK_ROWS = 1 << 20
#: colours of the two groups: the overlay's pure cyan and yellow, and for bars on white,
#: darker shades of the same hues
CYAN, YELLOW = (0.0, 1.0, 1.0), (1.0, 1.0, 0.0)
BAR_A, BAR_B = "#0fa3b8", "#d9a400"
OTHER_GREY = "#bdbdbd"
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by journals
    "ps.fonttype": 42,
}

Extent = tuple[float, float, float, float]


def square_extent(coords: np.ndarray, pad: float = 0.03) -> Extent:
    """(x0, x1, y0, y1): a square around every point of ``coords`` (float (N, 2), may be
    memory-mapped), so that pixels and histogram bins are square; ``pad`` of the span on
    each side."""
    lo = np.full(2, np.inf)
    hi = np.full(2, -np.inf)
    for s in range(0, len(coords), BLOCK_ROWS):
        block = np.asarray(coords[s : s + BLOCK_ROWS], dtype=np.float64)
        lo = np.minimum(lo, block.min(axis=0))
        hi = np.maximum(hi, block.max(axis=0))
    if not np.isfinite(lo).all():
        return (-1.0, 1.0, -1.0, 1.0)
    centre = (lo + hi) / 2
    half = float((hi - lo).max()) / 2 * (1 + 2 * pad) or 1.0
    return (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def _canvas(extent: Extent, size: int) -> Any:
    import datashader as ds

    x0, x1, y0, y1 = extent
    return ds.Canvas(plot_width=size, plot_height=size, x_range=(x0, x1), y_range=(y0, y1))


def _frame(coords: np.ndarray, **columns: Any) -> Any:
    import pandas as pd

    xy = np.asarray(coords, dtype=np.float32)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], **columns}, copy=False)


def _rgba(image: Any) -> np.ndarray:
    """A datashader image as uint8 (H, W, 4) RGBA."""
    data = np.ascontiguousarray(np.asarray(image.data, dtype=np.uint32))
    return data.view(np.uint8).reshape(*data.shape, 4).copy()


def _spread(image: Any, n: int) -> Any:
    """Grow the pixels of sparse maps so single points stay visible: 3 x 3 pixels below
    100 000 points, up to 7 x 7 where the canvas is sparse below 2 million, none above."""
    import datashader.transfer_functions as tf

    if n < 100_000:
        return tf.spread(image, px=1)
    return tf.dynspread(image, threshold=0.5, max_px=3) if n < 2_000_000 else image


def shade_values(
    coords: np.ndarray,
    values: np.ndarray,
    extent: Extent,
    *,
    span: tuple[float, float],
    cmap: str = "viridis",
    size: int = CANVAS,
) -> np.ndarray:
    """Points coloured by the mean of ``values`` (float (N,), NaN = unknown) per pixel,
    linear over ``span`` in ``cmap``; pixels whose points have no value are grey.

    Returns
    -------
    uint8 (size, size, 4) RGBA, row 0 = lowest y.
    """
    import datashader as ds
    import datashader.transfer_functions as tf
    import matplotlib

    df = _frame(coords, v=np.asarray(values, dtype=np.float32))
    canvas = _canvas(extent, size)
    everything = tf.shade(canvas.points(df, "x", "y"), cmap=[OTHER_GREY], how="log")
    if not np.isfinite(df["v"].to_numpy()).any():
        return _rgba(_spread(everything, len(df)))
    lo, hi = span
    if not hi > lo:
        hi = lo + 1e-6
    mean = tf.shade(
        canvas.points(df, "x", "y", agg=ds.mean("v")),
        cmap=matplotlib.colormaps[cmap],
        how="linear",
        span=(lo, hi),
    )
    return _rgba(_spread(tf.stack(everything, mean), len(df)))


def shade_density(
    coords: np.ndarray, extent: Extent, *, size: int = CANVAS, cmap: str = "magma"
) -> np.ndarray:
    """The density of every point of ``coords`` (float (N, 2), may be memory-mapped), counted
    block by block on one canvas (memory does not grow with N) and shaded by histogram
    equalisation in ``cmap``.

    Returns
    -------
    uint8 (size, size, 4) RGBA, row 0 = lowest y.
    """
    import datashader.transfer_functions as tf
    import matplotlib

    canvas = _canvas(extent, size)
    total = None
    for s in range(0, len(coords), BLOCK_ROWS):
        counts = canvas.points(_frame(coords[s : s + BLOCK_ROWS]), "x", "y")
        total = counts if total is None else total + counts
    if total is None:
        return np.zeros((size, size, 4), np.uint8)
    image = tf.shade(total, cmap=matplotlib.colormaps[cmap], how="eq_hist")
    return _rgba(_spread(image, len(coords)))


def shade_categories(
    coords: np.ndarray,
    codes: np.ndarray,
    colors: Sequence[str],
    extent: Extent,
    *,
    size: int = CANVAS,
) -> np.ndarray:
    """Points coloured by category: ``codes`` int (N,) index ``colors``; -1 (and codes past
    the colours) are drawn grey, underneath. Pixels mixing categories mix their colours.

    Returns
    -------
    uint8 (size, size, 4) RGBA, row 0 = lowest y.
    """
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd

    codes = np.asarray(codes)
    named = (codes >= 0) & (codes < len(colors))
    canvas = _canvas(extent, size)
    layers = []
    if (~named).any():
        rest = _frame(np.asarray(coords)[~named])
        layers.append(tf.shade(canvas.points(rest, "x", "y"), cmap=[OTHER_GREY], how="log"))
    if named.any():
        cats = pd.Categorical.from_codes(
            codes[named], categories=[str(i) for i in range(len(colors))]
        )
        df = _frame(np.asarray(coords)[named], c=cats)
        agg = canvas.points(df, "x", "y", agg=ds.count_cat("c"))
        layers.append(tf.shade(agg, color_key=list(colors), how="eq_hist", min_alpha=170))
    image = tf.stack(*layers) if len(layers) > 1 else layers[0]
    return _rgba(_spread(image, len(codes)))


def group_intensity(
    coords: np.ndarray, extent: Extent, *, size: int = CANVAS, how: str = "eq_hist"
) -> np.ndarray:
    """How densely a group covers each pixel: float32 (size, size) in [0, 1], 0 where it has
    no point. Counts are shaded with ``how`` (``eq_hist``, ``log`` or ``linear``), so a
    group's own density range fills the scale whatever its size."""
    import datashader.transfer_functions as tf

    df = _frame(coords)
    image = tf.shade(
        _canvas(extent, size).points(df, "x", "y"), cmap=["#ffffff"], how=how, min_alpha=80
    )
    return _rgba(_spread(image, len(df)))[..., 3].astype(np.float32) / 255.0


def overlay_rgb(
    coords_a: np.ndarray,
    coords_b: np.ndarray,
    extent: Extent,
    *,
    size: int = CANVAS,
    how: str = "eq_hist",
) -> np.ndarray:
    """Group A in cyan plus group B in yellow, added on black: where both are, green.

    Each group's intensity (:func:`group_intensity`) scales its colour; the sum
    (b, a + b, a) is divided by its largest channel wherever that passes 1, which keeps the
    hue: A alone is cyan (0, 1, 1), B alone yellow (1, 1, 0), both at full strength green
    (0.5, 1, 0.5).

    Returns
    -------
    uint8 (size, size, 3) RGB, row 0 = lowest y.
    """
    a = group_intensity(coords_a, extent, size=size, how=how)
    b = group_intensity(coords_b, extent, size=size, how=how)
    rgb = a[..., None] * np.asarray(CYAN, np.float32) + b[..., None] * np.asarray(
        YELLOW, np.float32
    )
    rgb /= np.maximum(rgb.max(axis=-1, keepdims=True), 1.0)
    return np.round(rgb * 255).astype(np.uint8)


def category_palette(n: int) -> list[str]:
    """``n`` distinct colours for categories: tab10 (the most distinct) first, then the
    light half of tab20, then tab20b: 38, repeated beyond (never grey, which means "other")."""
    import matplotlib
    from matplotlib.colors import to_hex

    def table(name: str) -> list[str]:
        return [to_hex(c) for c in matplotlib.colormaps[name].colors]  # type: ignore[attr-defined]

    colors = [c for c in table("tab10") if c != "#7f7f7f"]
    colors += [c for c in table("tab20")[1::2] if c != "#c7c7c7"]
    colors += table("tab20b")
    return [colors[i % len(colors)] for i in range(n)]


def top_categories(
    codes: np.ndarray, names: Sequence[str], top: int
) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """The ``top`` most frequent categories get a colour and a legend line, the rest grey.

    Returns
    -------
    (int32 (N,) codes into the colours, -1 for grey; the colours; legend (label, colour)
    pairs, with counts, ending with the grey rest when there is one).
    """
    codes = np.asarray(codes)
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))[:top]
    remap = np.full(len(names) + 1, -1, np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    new = remap[np.where(codes >= 0, codes, len(names))]
    colors = category_palette(len(order))
    legend = [(f"{names[i]} ({counts[i]:,})", c) for i, c in zip(order, colors, strict=True)]
    rest = int((new < 0).sum())
    if rest:
        others = len(names) - len(order)
        what = f"{others:,} other categories and none" if others else "none"
        legend.append((f"{what} ({rest:,})", OTHER_GREY))
    return new, colors, legend


# ---------------------------------------------------------------------------- figures


def save_figure(fig: Any, base: Path, formats: Sequence[str], dpi: int) -> list[Path]:
    """Save ``fig`` as ``base.png`` / ``base.pdf`` …; closes it; returns the paths."""
    import matplotlib.pyplot as plt

    paths = []
    try:
        for fmt in formats:
            path = base.with_name(f"{base.name}.{fmt}")
            fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor=fig.get_facecolor())
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_map(
    base: Path,
    image: np.ndarray,
    extent: Extent,
    *,
    title: str,
    axis_labels: tuple[str, str],
    colorbar: tuple[str, float, float, str] | None = None,
    legend: Sequence[tuple[str, str]] = (),
    formats: Sequence[str] = ("png",),
    dpi: int = 150,
) -> list[Path]:
    """A map figure: ``image`` (RGBA from :func:`shade_values` / :func:`shade_categories`)
    on equal axes, with a colour bar (cmap, vmin, vmax, label) or a legend of
    (label, colour)."""
    plt = pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        ax.imshow(image, origin="lower", extent=extent, interpolation="nearest")
        ax.set_aspect("equal")
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.set_title(title)
        if colorbar is not None:
            cmap, vmin, vmax, label = colorbar
            mappable = ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)
            fig.colorbar(mappable, ax=ax, label=label, shrink=0.85)
        if legend:
            handles = [Patch(facecolor=c, edgecolor="none", label=t) for t, c in legend]
            ax.legend(
                handles=handles,
                loc="center left",
                bbox_to_anchor=(1.02, 0.5),
                frameon=False,
                ncol=1 if len(handles) <= 25 else 2,
            )
        fig.tight_layout()
        return save_figure(fig, base, formats, dpi)


def plot_density_difference(
    base: Path,
    difference: np.ndarray,
    extent: Extent,
    *,
    names: tuple[str, str],
    counts: tuple[int, int],
    axis_labels: tuple[str, str],
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 300,
) -> list[Path]:
    """The density difference B minus A (float (bins, bins), row = y bin): a diverging
    colour map centred on 0 with symmetric limits (red: denser in B, blue: denser in A)."""
    plt = pyplot()

    (name_a, name_b), (n_a, n_b) = names, counts
    limit = float(np.nanmax(np.abs(difference))) if difference.size else 0.0
    limit = limit or 1e-12
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        shown = ax.imshow(
            difference,
            origin="lower",
            extent=extent,
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            interpolation="nearest",
        )
        ax.set_aspect("equal")
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.set_title(
            f"{name_b} (n = {n_b:,}) minus {name_a} (n = {n_a:,})\n"
            f"red: denser in {name_b}, blue: denser in {name_a}"
        )
        fig.colorbar(shown, ax=ax, shrink=0.85, label="difference of contig fractions per bin")
        fig.tight_layout()
        return save_figure(fig, base, formats, dpi)


def plot_overlay(
    base: Path,
    rgb: np.ndarray,
    extent: Extent,
    *,
    names: tuple[str, str],
    counts: tuple[int, int],
    axis_labels: tuple[str, str],
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 300,
) -> list[Path]:
    """The overlay of :func:`overlay_rgb` on black, with a legend of the three colours."""
    plt = pyplot()
    from matplotlib.patches import Patch

    (name_a, name_b), (n_a, n_b) = names, counts
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        ax.set_facecolor("black")
        ax.imshow(rgb, origin="lower", extent=extent, interpolation="nearest")
        ax.set_aspect("equal")
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.set_title(f"{name_a} (cyan) and {name_b} (yellow); both: green")
        handles = [
            Patch(facecolor=CYAN, label=f"{name_a} (n = {n_a:,})"),
            Patch(facecolor=YELLOW, label=f"{name_b} (n = {n_b:,})"),
            Patch(facecolor=(0.5, 1.0, 0.5), label="both"),
        ]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.tight_layout()
        return save_figure(fig, base, formats, dpi)


def plot_composition(
    base: Path,
    rows: Sequence[dict[str, Any]],
    *,
    names: tuple[str, str],
    top: int = 30,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 300,
) -> list[Path]:
    """Stacked bars of the ``top`` largest clusters of a composition table (rows with
    cluster, n_a, n_b, fraction_a, fraction_b): above, contigs of A and B; below, each
    group's fraction scaled to sum 1 per cluster (0.5: as common in both groups)."""
    plt = pyplot()

    name_a, name_b = names
    shown = list(rows[:top])
    labels = [str(r["cluster"]) for r in shown]
    x = np.arange(len(shown))
    n_a = np.array([r["n_a"] for r in shown], dtype=float)
    n_b = np.array([r["n_b"] for r in shown], dtype=float)
    f_a = np.array([r["fraction_a"] for r in shown], dtype=float)
    f_b = np.array([r["fraction_b"] for r in shown], dtype=float)
    total = f_a + f_b
    rel_a = np.divide(f_a, total, out=np.zeros_like(f_a), where=total > 0)
    with plt.rc_context(STYLE):
        width = max(6.0, 0.32 * len(shown) + 2.0)
        fig, (top_ax, low_ax) = plt.subplots(2, 1, figsize=(width, 7.0), sharex=True)
        top_ax.bar(x, n_a, color=BAR_A, label=name_a)
        top_ax.bar(x, n_b, bottom=n_a, color=BAR_B, label=name_b)
        top_ax.set_ylabel("contigs")
        top_ax.set_title(f"composition of the {len(shown)} largest clusters")
        top_ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        low_ax.bar(x, rel_a, color=BAR_A)
        low_ax.bar(x, 1 - rel_a, bottom=rel_a, color=BAR_B)
        low_ax.axhline(0.5, color="black", linewidth=0.8, linestyle="--")
        low_ax.set_ylim(0, 1)
        low_ax.set_ylabel("share (groups equal-sized)")
        low_ax.set_xticks(x, labels, rotation=90)
        low_ax.set_xlabel("cluster")
        for ax in (top_ax, low_ax):
            ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        return save_figure(fig, base, formats, dpi)
