"""The HTML report as a reader sees it: the smoke suite (config/suite_smoke.yaml) is run in a
scratch copy of the workflow, `snakemake --report` builds its report, and a real Chromium, driven by
Playwright, opens every category and every item. Nothing may download (Snakemake offers any file it
cannot show as a download); every view shows something; every ablation table shows its baseline and
the Δ mIoU column; every image has a size; every caption is shown. Screenshots of each view are
kept in $SRCR_TEST_ARTIFACTS (default: pytest's tmp folder); the path is printed.

Needs Debian's chromium (/usr/bin/chromium) and the Python package playwright (the test extra).
Without them the test is skipped with the reason, unless SRCR_REQUIRE_BROWSER=1 (CI), which makes
their absence a failure."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from workflow_helpers import run_snakemake, workflow_copy

SUITE = "config/suite_smoke.yaml"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# every category the workflow flags outputs for (workflow/rules/common.smk, aggregate.smk)
CATEGORIES = {"Data", "Errors", "Figures", "Offsets", "Reports", "Runs", "Tables", "Training"}


def _chromium_or_skip() -> str:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium")
    if chromium is None:
        missing.append("no chromium on PATH (apt-get install -y chromium)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("SRCR_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SRCR_REQUIRE_BROWSER=1, but {reason}")
        pytest.skip(reason)
    return chromium


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> tuple[Path, Path]:
    """The smoke suite's HTML report and its workflow copy."""
    _chromium_or_skip()
    wf = workflow_copy(tmp_path_factory.mktemp("browser") / "wf")
    run_snakemake(wf, "--cores", "2", "--configfile", SUITE, timeout=1800)
    run_snakemake(wf, "--configfile", SUITE, "--report", "report.html", timeout=600)
    return wf / "report.html", wf


@pytest.fixture
def artifacts(tmp_path, capsys) -> Path:
    out = Path(os.environ.get("SRCR_TEST_ARTIFACTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\nreport screenshots: {out}")
    return out


def _baselines(wf: Path) -> dict[str, str]:
    import yaml

    from srcr.report.load import load_grid

    suite = yaml.safe_load((wf / SUITE).read_text())
    grid = load_grid(wf / suite["grid"], suite["tables"])
    return {name: spec["baseline"] for name, spec in grid.tables.items()}


def _exactly(text: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def _open_category(page, category: str, subcategory: str | None) -> None:
    """From wherever the menu is: back to the list of categories, then into ``category``."""
    back = page.locator("nav a", has_text=_exactly("Results"))
    if back.count():
        back.first.click()
    page.locator("nav a", has_text=_exactly(category)).first.click()
    if subcategory is not None:  # only where a category has several
        page.locator("nav a", has_text=_exactly(subcategory)).first.click()


# the element of the main pane that shows a result: an <img>, or an <iframe> for an HTML page
_SHOWN = "uri => [...document.querySelectorAll('#app iframe, #app img')].find(e => e.src === uri)"


def _view(page, path: str, uri: str) -> dict | None:
    """Click the view (eye) button of the result ``path``; what the main pane then shows (None when
    it does not show the result's own data within 10 s)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    row = page.locator("nav tr", has=page.locator("td", has_text=_exactly(path)))
    row.locator("a[iconname=eye]").click()
    try:
        page.wait_for_function(f"uri => !!({_SHOWN})(uri)", arg=uri, timeout=10_000)
    except PlaywrightTimeout:
        return None
    shown = page.evaluate_handle(_SHOWN, uri).as_element()
    if shown.evaluate("e => e.tagName") == "IMG":
        page.wait_for_function("e => e.complete", arg=shown)
        return {"frame": None, "text": "", "widths": [shown.evaluate("e => e.naturalWidth")]}
    frame = shown.content_frame()
    frame.wait_for_load_state()
    return {
        "frame": frame,
        "text": frame.evaluate("document.body ? document.body.innerText : ''"),
        "widths": frame.evaluate("[...document.images].map(i => i.complete && i.naturalWidth)"),
    }


def _caption_shown(page, path: str, caption_html: str) -> bool:
    """Click the info button of ``path``: does the menu show the caption?"""
    row = page.locator("nav tr", has=page.locator("td", has_text=_exactly(path)))
    row.locator("a[iconname=information-circle]").click()
    words = page.evaluate(
        "h => { const d = document.createElement('div'); d.innerHTML = h; return d.textContent; }",
        caption_html,
    ).split()
    page.wait_for_timeout(200)
    return " ".join(words) in " ".join(page.locator("nav").first.inner_text().split())


def _check(category: str, name: str, shown: dict, baselines: dict[str, str], where: str) -> None:
    assert shown["text"].strip() or shown["widths"], f"{where}: empty main pane"
    widths = shown["widths"]
    assert all(w and w > 0 for w in widths), f"{where}: an image without pixels {widths}"
    if category == "Tables":
        base = baselines[Path(name).stem]
        assert re.search(rf"\b{re.escape(base)}\b", shown["text"]), f"{where}: no baseline {base}"
        assert "Δ mIoU" in shown["text"], f"{where}: no Δ mIoU column"
    if category == "Reports":  # the reports embed their figures
        assert shown["widths"], f"{where}: no figures"


@pytest.mark.slow
def test_every_item_of_the_html_report_is_shown_inline(smoke_report, artifacts):
    from playwright.sync_api import sync_playwright

    report, wf = smoke_report
    baselines = _baselines(wf)
    downloads: list[str] = []
    seen: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium_or_skip(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
        page.on("download", lambda d: downloads.append(d.suggested_filename))
        page.goto(report.as_uri())
        page.wait_for_function("window.categories && window.results", timeout=60_000)
        categories = page.evaluate("categories")  # {category: {subcategory: [result path]}}
        results = page.evaluate("results")
        assert set(categories) == CATEGORIES
        for category, subcategories in sorted(categories.items()):
            for subcategory, paths in sorted(subcategories.items()):
                for path in paths:
                    _open_category(page, category, subcategory if len(subcategories) > 1 else None)
                    name, before = results[path]["name"], len(downloads)
                    shown = _view(page, path, results[path]["data_uri"])
                    shot = artifacts / f"{category}_{Path(name).stem}.png"
                    page.screenshot(path=str(shot))
                    where = f"{category} / {path} (screenshot {shot})"
                    assert len(downloads) == before, f"{where}: downloaded, not shown"
                    assert shown is not None, f"{where}: the main pane does not show it"
                    _check(category, name, shown, baselines, where)
                    if shown["frame"] is not None and shown["widths"]:  # a page with figures
                        shown["frame"].locator("img").first.scroll_into_view_if_needed()
                        page.screenshot(path=str(shot.with_name(f"{shot.stem}_figure.png")))
                    assert _caption_shown(page, path, results[path]["caption"]), f"{where}: caption"
                    seen.setdefault(category, []).append(name)
        browser.close()
    assert not downloads, f"items downloaded instead of being shown: {downloads}"
    assert sorted(seen["Tables"]) == sorted(f"{t}.html" for t in baselines)
    assert sorted(seen["Reports"]) == ["errors.html", "report.html"]
    assert seen["Runs"] == ["runs.html"] and sum(map(len, seen.values())) == len(results)
