"""A ``kmervae report`` page in a real (headless) Chromium: it renders with no network, logs
no error, draws its figures, and the map's tooltip names the contig under the mouse."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, colourful_share, resource_urls, severe_logs, wait_for
from cluster_factory import blobs, write_graph, write_store

from kmervae.cli import main
from kmervae.viz.maps import FORMAT_NAME, SCHEMA_VERSION, write_map_arrays

N = 800

#: the map figure's view, found by its Bokeh name
FIND_MAP = """
const views = [...(Bokeh.index.values ? Bokeh.index.values() : Object.values(Bokeh.index))];
return views.find(v => v.model.name === "kmervae-map");
"""

RENDERED = """
if (!(window.Bokeh && Bokeh.documents.length)) return 0;
const views = [...(Bokeh.index.values ? Bokeh.index.values() : Object.values(Bokeh.index))];
const map = views.find(v => v.model.name === "kmervae-map");
const canvas = map && map.canvas_view && map.canvas_view.el.shadowRoot;
return canvas && canvas.querySelector("canvas") ? views.length : 0;
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A report of a map (written by the map writer) coloured by a Leiden clustering."""
    tmp = tmp_path_factory.mktemp("browser")
    x, _, lengths, gc = blobs(N, groups=6, dim=8, seed=3)
    ids = [f"c{i}" for i in range(N)]
    write_graph(write_store(tmp / "store", x, lengths, gc, ids), tmp / "graph", k=10)
    cmd = ["cluster", str(tmp / "graph"), "-o", str(tmp / "clusters"), "--method", "leiden"]
    assert main([*cmd, "-q"]) == 0
    folder = tmp / "map"
    folder.mkdir()
    ids_sha = write_map_arrays(folder, x[:, :2] * 3, lengths, gc, iter([ids]))
    manifest = {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, "n_rows": N,
                "method": "tsne", "ids_sha256": ids_sha}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    out = tmp / "report.html"
    assert main(["report", str(folder), str(tmp / "clusters"), "-o", str(out), "-q"]) == 0
    return out


def _open(driver, page: Path) -> int:
    driver.get(page.as_uri())
    return wait_for(driver, RENDERED, what="Bokeh to render the map")


def test_the_page_renders_offline_and_draws_its_figures(page, tmp_path):
    started = time.monotonic()
    with chromium(tmp_path / "profile") as driver:
        views = _open(driver, page)
        assert views >= 3  # the map and the two cluster histograms
        time.sleep(0.5)  # let the canvases paint
        assert severe_logs(driver) == []
        loaded = resource_urls(driver)
        assert all(u.startswith(("data:", "file:")) for u in loaded), loaded
        box = driver.execute_script(
            FIND_MAP.replace("return views", "const v = views")
            + "v.el.scrollIntoView(); const r = v.el.getBoundingClientRect();"
            + "return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];"
        )
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
    left, top, right, bottom, ratio = box
    share, colours = colourful_share(
        shot, tuple(int(v * ratio) for v in (left, top, right, bottom))
    )
    assert share > 0.004, share  # coloured points, not a blank canvas or bare axes
    assert colours >= 6, colours  # clusters in several colours
    assert time.monotonic() - started < 60


def test_the_map_tooltip_names_the_contig(page, tmp_path):
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page)
        point = driver.execute_script(
            FIND_MAP.replace("return views", "const v = views")
            + """
            v.el.scrollIntoView();
            const r = v.model.renderers.find(r => r.data_source && r.data_source.data.x
                                             && r.data_source.data.x.length);
            const d = r.data_source.data, rect = v.el.getBoundingClientRect();
            return [rect.left + v.frame.x_scale.compute(d.x[0]),
                    rect.top + v.frame.y_scale.compute(d.y[0]), d.id[0]];
            """
        )
        x, y, ident = point
        driver.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        text = wait_for(
            driver,
            """
            const found = [];
            const walk = root => {
              for (const el of root.querySelectorAll("*")) {
                if (el.shadowRoot) walk(el.shadowRoot);
                const c = String(el.className || "");
                if (/tooltip/i.test(c) && el.offsetParent !== null && el.innerText)
                  found.push(el.innerText);
              }
            };
            walk(document);
            return found.join("\\n");
            """,
            timeout=10,
            what="the map's tooltip",
        )
    assert ident in text and "length:" in text and "cluster:" in text
    assert np.isfinite(x) and np.isfinite(y)
