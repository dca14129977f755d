"""A headless Chromium for tests that look at HTML pages: started through selenium with a
fresh profile, no network chatter, console logs kept; skips cleanly where Chromium,
chromedriver or selenium is missing, fails with a clear message where the driver cannot
start (never hangs)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: seconds a page may take to load, and a driver to answer
PAGE_LOAD_TIMEOUT = 20
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
DRIVER_NAMES = ("chromedriver",)
OPTIONS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def _which(names: tuple[str, ...], default: str) -> str | None:
    if Path(default).is_file():
        return default
    return next((found for name in names if (found := shutil.which(name))), None)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A headless Chromium WebDriver with its user data in ``profile`` (made here); skips
    the test where selenium, Chromium or chromedriver is missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    browser = _which(CHROMIUM_NAMES, "/usr/bin/chromium")
    driver_path = _which(DRIVER_NAMES, "/usr/bin/chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("Chromium and chromedriver are not installed")
    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for option in OPTIONS:
        options.add_argument(option)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    started = time.monotonic()
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as exc:
        first = (exc.msg or str(exc)).strip().splitlines()[0]
        pytest.fail(
            f"headless Chromium ({browser}, driver {driver_path}) did not start in "
            f"{time.monotonic() - started:.0f} s: {first}",
            pytrace=False,
        )
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(PAGE_LOAD_TIMEOUT)
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, timeout: float = PAGE_LOAD_TIMEOUT, what: str = "") -> Any:
    """Run ``script`` (JavaScript returning a value) until it returns something truthy;
    returns it, or fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or script}")
        time.sleep(0.1)


def severe_logs(driver: Any, keep: Callable[[dict[str, Any]], bool] = lambda e: True) -> list:
    """The console entries of level SEVERE logged since the last call."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and keep(e)]


def resource_urls(driver: Any) -> list[str]:
    """Every resource the page loaded (performance entries), by URL."""
    return list(
        driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    )


def colourful_share(png: Path, box: tuple[int, int, int, int] | None = None) -> tuple[float, int]:
    """In the screenshot ``png`` (or its ``box``: left, top, right, bottom pixels): the
    share of coloured pixels (channels differing by more than 60 of 255: not white, grey
    or black, so neither background, grid nor axes) and how many distinct coarse colours
    they have (each channel quantised to 8 levels)."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    if box is not None:
        left, top, right, bottom = box
        rgb = rgb[max(top, 0) : bottom, max(left, 0) : right]
    if rgb.size == 0:
        return 0.0, 0
    coloured = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 60
    coarse = (rgb[coloured] // 32).astype(np.int32)
    colours = len(np.unique(coarse[:, 0] * 64 + coarse[:, 1] * 8 + coarse[:, 2]))
    return float(coloured.mean()), colours
