"""The HTML report as a reader sees it: the smoke suite (config/suite_smoke.yaml) is run in a
scratch copy of the workflow, `snakemake --report` builds its report, and a real Chromium, driven by
Playwright, opens every category and every item. Nothing may download (Snakemake offers any file it
cannot show as a download); every view shows something; every ablation table shows its baseline and
the Δ mIoU column; every image has a size. Screenshots of each view are kept in $SRCR_TEST_ARTIFACTS
(default: pytest's tmp folder); the path is printed.

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
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# every category the workflow flags outputs for (workflow/rules/common.smk, aggregate.smk)
CATEGORIES = {"Data", "Errors", "Figures", "Offsets", "Reports", "Runs", "Tables"}


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


def _open_category(page, category: str) -> None:
    page.locator("nav a, a", has_text=re.compile(rf"^\s*{re.escape(category)}\s*$")).first.click()
    page.wait_for_timeout(300)


def _view(page, name: str) -> dict:
    """Click the view button of the result ``name`` and describe what the main pane shows."""
    row = page.locator("tr", has=page.locator("td", has_text=re.compile(rf"^{re.escape(name)}$")))
    row.locator("a").last.click()
    page.wait_for_timeout(500)
    main = page.locator("iframe, div.p-3 > img").last
    main.wait_for(state="attached", timeout=10_000)
    if main.evaluate("e => e.tagName") == "IMG":
        return {"kind": "img", "text": "", "widths": [main.evaluate("e => e.naturalWidth")]}
    frame = main.element_handle().content_frame()
    frame.wait_for_load_state()
    return {"kind": "html", "text": frame.evaluate("document.body ? document.body.innerText : ''"),
            "widths": frame.evaluate("[...document.images].map(i => i.naturalWidth)")}


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
        page.wait_for_function("typeof categories !== 'undefined'")
        categories = page.evaluate("categories")  # {category: {subcategory: [result path]}}
        results = page.evaluate("results")
        assert set(categories) == CATEGORIES
        for category in sorted(categories):
            for subcategory, paths in sorted(categories[category].items()):
                _open_category(page, category)
                if len(categories[category]) > 1:
                    _open_category(page, subcategory)
                for path in paths:
                    name = results[path]["name"]
                    shown = _view(page, name)
                    shot = artifacts / f"{category}_{Path(name).stem}.png"
                    page.screenshot(path=str(shot))
                    where = f"{category} / {name} ({shot})"
                    assert results[path]["caption"].strip(), f"{where}: no caption"
                    assert shown["text"].strip() or shown["widths"], f"{where}: empty main pane"
                    assert all(w > 0 for w in shown["widths"]), f"{where}: image not loaded {shown}"
                    if category == "Tables":
                        table = Path(name).stem
                        assert baselines[table] in shown["text"], f"{where}: no baseline {baselines[table]}"
                        assert "Δ mIoU" in shown["text"], f"{where}: no Δ mIoU column"
                    if category == "Reports":  # the reports embed their figures
                        assert shown["widths"], f"{where}: no figures"
                    seen.setdefault(category, []).append(name)
        browser.close()
    assert not downloads, f"items downloaded instead of being shown: {downloads}"
    assert sorted(seen["Tables"]) == sorted(f"{t}.html" for t in baselines)
    assert sorted(seen["Reports"]) == ["errors.html", "report.html"] and seen["Runs"] == ["runs.html"]
    assert sum(map(len, seen.values())) == len(results)
