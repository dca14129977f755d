"""Comparison on a map: histograms against numpy's, density differences, overlay pixels,
composition against a naive count, the samples file and its errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kmervae.errors import InputError, KmervaeError
from kmervae.viz.compare import (
    UNCLUSTERED,
    assign_groups,
    composition_table,
    density_difference,
    density_histogram,
    parse_formats,
    read_samples,
)
from kmervae.viz.render import (
    OTHER_GREY,
    category_palette,
    overlay_rgb,
    shade_categories,
    shade_values,
    square_extent,
    top_categories,
)


def naive_histogram(xy: np.ndarray, extent, bins: int) -> np.ndarray:
    x0, x1, y0, y1 = extent
    h, _, _ = np.histogram2d(xy[:, 1], xy[:, 0], bins=bins, range=[[y0, y1], [x0, x1]])
    return h / h.sum()


def test_square_extent_is_square_and_holds_every_point():
    xy = np.array([[0, 0], [10, 2], [3, -1]], np.float32)
    x0, x1, y0, y1 = square_extent(xy)
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert x0 < 0 < 10 < x1 and y0 < -1 < 2 < y1
    assert square_extent(np.zeros((3, 2), np.float32)) == (-1.0, 1.0, -1.0, 1.0)


def test_histogram_is_numpys_normalised():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(20_000, 2)).astype(np.float32)
    extent = square_extent(xy)
    got = density_histogram(xy, extent, 37)
    np.testing.assert_allclose(got, naive_histogram(xy, extent, 37), atol=1e-12)
    assert got.sum() == pytest.approx(1.0)
    assert got.shape == (37, 37)
    # row = y: a point high up and on the left lands in the last row, first column
    corner = density_histogram(np.array([[-0.9, 0.9]], np.float32), (-1, 1, -1, 1), 4)
    assert corner[3, 0] == 1.0
    assert density_histogram(np.zeros((0, 2), np.float32), (-1, 1, -1, 1), 4).sum() == 0


def test_density_difference_of_identical_and_disjoint_groups():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30_000, 2)).astype(np.float32)
    b = rng.normal(size=(30_000, 2)).astype(np.float32)
    extent = square_extent(np.concatenate([a, b]))
    assert np.abs(density_difference(a, a, extent, 50)).max() == 0
    same = density_difference(a, b, extent, 20)
    assert np.abs(same).sum() < 0.1 and abs(same.sum()) < 1e-12
    left = np.column_stack([rng.uniform(-1, -0.1, 5000), rng.uniform(-1, 1, 5000)])
    right = np.column_stack([rng.uniform(0.1, 1, 3000), rng.uniform(-1, 1, 3000)])
    diff = density_difference(left, right, (-1, 1, -1, 1), 20)  # B (right) minus A (left)
    assert (diff[:, :10] <= 0).all() and (diff[:, 10:] >= 0).all()
    assert diff[:, 10:].sum() == pytest.approx(1.0) and diff[:, :10].sum() == pytest.approx(-1.0)
    want = naive_histogram(right, (-1, 1, -1, 1), 20) - naive_histogram(left, (-1, 1, -1, 1), 20)
    np.testing.assert_allclose(diff, want, atol=1e-12)


def _pixel(img: np.ndarray, x: float, y: float, extent=(0, 1, 0, 1)) -> np.ndarray:
    size = img.shape[0]
    col = int((x - extent[0]) / (extent[1] - extent[0]) * size)
    row = int((y - extent[2]) / (extent[3] - extent[2]) * size)
    return img[row, col].astype(int)


def test_overlay_pixels_are_cyan_yellow_and_green():
    rng = np.random.default_rng(2)

    def patch(x0, x1, n):
        return np.column_stack([rng.uniform(x0, x1, n), rng.uniform(0.3, 0.7, n)])

    shared = patch(0.42, 0.58, 4000)
    a = np.concatenate([patch(0.05, 0.3, 4000), shared])
    b = np.concatenate([patch(0.7, 0.95, 1000), shared])  # groups of other sizes
    rgb = overlay_rgb(a, b, (0, 1, 0, 1), size=100)
    assert rgb.shape == (100, 100, 3) and rgb.dtype == np.uint8
    cyan, yellow, green = _pixel(rgb, 0.18, 0.5), _pixel(rgb, 0.82, 0.5), _pixel(rgb, 0.5, 0.5)
    assert cyan[0] == 0 and cyan[1] > 150 and cyan[2] == cyan[1]
    assert yellow[2] == 0 and yellow[0] > 150 and yellow[0] == yellow[1]
    assert green[1] > 200 and 0 < green[0] < green[1] and 0 < green[2] < green[1]
    assert (_pixel(rgb, 0.5, 0.9) == 0).all()  # no point: black
    assert (rgb[:, :, 1] >= rgb[:, :, 0]).all() and (rgb[:, :, 1] >= rgb[:, :, 2]).all()


def test_shaded_maps_colour_where_the_points_are():
    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(0, 0.5, 2000), rng.uniform(0, 1, 2000)])
    values = np.where(np.arange(2000) % 10 == 0, np.nan, xy[:, 1])
    img = shade_values(xy, values, (0, 1, 0, 1), span=(0, 1), size=50)
    assert img.shape == (50, 50, 4) and img.dtype == np.uint8
    assert (img[:, 30:, 3] == 0).all() and (img[5:45, 2:23, 3] > 0).all()
    low, high = _pixel(img, 0.25, 0.05), _pixel(img, 0.25, 0.95)
    assert low[2] > low[1] and high[1] > high[2]  # viridis: blue-purple at 0, yellow at 1
    codes = (xy[:, 1] > 0.5).astype(int)
    codes[:50] = -1
    cat = shade_categories(xy, codes, ["#ff0000", "#0000ff"], (0, 1, 0, 1), size=50)
    top, bottom = _pixel(cat, 0.25, 0.9), _pixel(cat, 0.25, 0.1)
    assert top[2] > 200 and top[0] < 50 and bottom[0] > 200 and bottom[2] < 50


def test_top_categories_name_the_most_frequent():
    codes = np.array([0, 1, 1, 2, 2, 2, -1, 3])
    new, colors, legend = top_categories(codes, ["a", "b", "c", "d"], 2)
    np.testing.assert_array_equal(new, [-1, 1, 1, 0, 0, 0, -1, -1])
    assert len(colors) == 2
    assert [t for t, _ in legend] == ["c (3)", "b (2)", "2 other categories and none (3)"]
    assert legend[-1][1] == OTHER_GREY
    palette = category_palette(45)
    assert OTHER_GREY not in palette and len(set(palette)) == 38 and palette[38] == palette[0]


def test_composition_against_a_naive_count():
    rng = np.random.default_rng(4)
    names = [f"k{i}" for i in range(7)]
    clusters = [None if rng.random() < 0.1 else names[rng.integers(0, 7)] for _ in range(3000)]
    groups = rng.integers(1, 3, 3000)
    rows = composition_table(clusters, groups)
    naive: dict[str, list[int]] = {}
    for c, g in zip(clusters, groups, strict=True):
        naive.setdefault(UNCLUSTERED if c is None else c, [0, 0])[g - 1] += 1
    total_a, total_b = int((groups == 1).sum()), int((groups == 2).sum())
    assert {r["cluster"]: [r["n_a"], r["n_b"]] for r in rows} == naive
    for r in rows:
        assert r["fraction_a"] == pytest.approx(r["n_a"] / total_a)
        assert r["fraction_b"] == pytest.approx(r["n_b"] / total_b)
        assert r["share_a"] == pytest.approx(r["n_a"] / (r["n_a"] + r["n_b"]))
    sizes = [r["n_a"] + r["n_b"] for r in rows[:-1]]
    assert sizes == sorted(sizes, reverse=True) and rows[-1]["cluster"] == UNCLUSTERED
    assert sum(r["fraction_a"] for r in rows) == pytest.approx(1.0)


def _samples(path, text):
    path.write_text(text)
    return path


def test_read_samples_and_its_errors(tmp_path):
    table = read_samples(
        _samples(tmp_path / "s.tsv", "contig_id\tgroup\tsample\nc1\tsea\ts1\nc2\tlake\ts2\n\n")
    )
    assert table.group_of == {"c1": 0, "c2": 1} and table.groups == ["sea", "lake"]
    assert table.samples == [{"s1"}, {"s2"}] and table.contigs == [1, 1]
    bad = {
        "": "empty",
        "name\tsample\tgroup\nc1\ts\tg\n": "line 1: expected a header",
        "contig\tsample\n": "line 1: expected a header",
        "contig\tsample\tgroup\n": "no contigs",
        "id\tsample\tgroup\nc1\ts1\n": "line 2: expected 3 tab-separated columns",
        "id\tsample\tgroup\nc1\ts1\tg\nc1\ts2\tg\n": "line 3: contig 'c1' is listed twice",
        "id\tsample\tgroup\nc1\ts1\t\n": "line 2: empty contig id or group",
    }
    for i, (text, message) in enumerate(bad.items()):
        path = _samples(tmp_path / f"bad{i}.tsv", text)
        with pytest.raises(InputError, match=message) as err:
            read_samples(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="no such samples file"):
        read_samples(tmp_path / "absent.tsv")
    with pytest.raises(InputError, match=r"no contig is in group 'soil' \(groups: lake, sea\)"):
        table.index("soil")


def test_assign_groups_counts_what_is_missing(tmp_path, caplog):
    text = "contig\tsample\tgroup\n" + "".join(
        f"c{i}\ts{i % 3}\t{['a', 'b', 'c'][i % 3]}\n" for i in range(30)
    )
    table = read_samples(_samples(tmp_path / "s.tsv", text))
    ids = [[f"c{i}" for i in range(0, 20)], ["other1", "other2"]]
    with caplog.at_level(logging.WARNING, logger="kmervae"):
        rows = assign_groups(iter(ids), 22, table, "a", "b", {"c0": "k1", "c4": "k2"})
    assert "10 of the 30 contigs" in caplog.text
    assert rows.n_matched == 20 and rows.n_missing == 10
    want = [1 if i % 3 == 0 else 2 if i % 3 == 1 else 0 for i in range(20)] + [0, 0]
    np.testing.assert_array_equal(rows.codes, want)
    assert rows.n_a == 7 and rows.n_b == 7
    assert rows.clusters is not None and rows.clusters[:3] == ["k1", None, None]
    assert rows.clusters[3] == "k2"  # row 4 is the 4th row of a or b
    with pytest.raises(InputError, match="none of its 30 contigs is in the map"):
        assign_groups(iter([["x", "y"]]), 2, table, "a", "b")
    with pytest.raises(InputError, match="group 'b': none of its 10 contigs"):
        assign_groups(iter([["c0", "c2"]]), 2, table, "a", "b")


def test_formats():
    assert parse_formats("png") == ("png",)
    assert parse_formats("PDF, png,pdf") == ("pdf", "png")
    with pytest.raises(KmervaeError, match="png and/or pdf"):
        parse_formats("svg")
