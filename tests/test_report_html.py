"""The HTML renderings of the report's Markdown and CSV files (srcr.report.html_pages): what
Snakemake's --report shows inline. Known answers on hand-written files; the whole report in a real
browser is tests/test_report_browser.py."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from srcr.errors import UserError
from srcr.report.html_pages import (
    MAX_PAGE_BYTES,
    csv_page,
    html_sources,
    html_twin,
    markdown_body,
    markdown_page,
    write_html_twin,
)

MD = """# suite: ablation report

Results: `results/x`; see **this**.

| variant   | Δ mIoU [95% CI]   |
|:----------|:------------------|
| base      | baseline          |
| srm & crm | +0.32 [-0.07, +0.71] n.s. |

- seeds: 2; baseline: base.
- Code: srcr 0.1.0.

![curves](figures/curves.png)
"""


def _png(path, w, h, seed=0):
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)  # incompressible
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(s) for s in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_markdown_table_list_and_inline_markup():
    body = markdown_body(MD)
    assert "<h1>suite: ablation report</h1>" in body
    assert "<th>variant</th><th>Δ mIoU [95% CI]</th>" in body
    assert "<tr><td>srm &amp; crm</td><td>+0.32 [-0.07, +0.71] n.s.</td></tr>" in body
    assert body.count("<tr>") == 3 and body.count("<li>") == 2
    assert "<code>results/x</code>" in body and "<b>this</b>" in body
    assert '<img alt="curves" src="figures/curves.png">' in body  # no image map: left as it is


def test_figures_are_embedded_unchanged_when_they_fit(tmp_path):
    png = _png(tmp_path / "figures" / "curves.png", 40, 30)
    (tmp_path / "r.md").write_text(MD)
    out = write_html_twin(tmp_path / "r.md")
    assert out == tmp_path / "r.html"
    assert _images(out.read_text()) == [png.read_bytes()]


def test_large_figures_are_shrunk_until_the_page_fits_an_inline_view(tmp_path):
    md = "# big\n\n" + "\n".join(f"![f{k}](figures/f{k}.png)" for k in range(3)) + "\n"
    for k in range(3):
        _png(tmp_path / "figures" / f"f{k}.png", 900, 600, seed=k)  # ~1.6 MB each as PNG
    (tmp_path / "big.md").write_text(md)
    page = markdown_page(tmp_path / "big.md")
    assert len(page.encode()) <= MAX_PAGE_BYTES
    data = _images(page)
    assert len(data) == 3 and all(
        len(b) < (tmp_path / "figures" / "f0.png").stat().st_size for b in data
    )  # each one re-encoded smaller
    shown = [Image.open(io.BytesIO(b)) for b in data]
    assert all(320 <= im.width <= 900 for im in shown) and min(im.width for im in shown) < 900
    assert all(abs(im.height / im.width - 600 / 900) < 0.01 for im in shown)


def test_a_missing_figure_names_the_report_and_the_image(tmp_path):
    (tmp_path / "r.md").write_text(MD)
    with pytest.raises(UserError, match=r"r\.md: image 'figures/curves.png' not found"):
        write_html_twin(tmp_path / "r.md")
    assert not (tmp_path / "r.html").exists()


def test_csv_page_keeps_the_cells_as_written(tmp_path):
    (tmp_path / "t.csv").write_text("variant,mIoU,note\nsrm_crm,73.4600,\nbase,70.0000,x<y\n")
    page = csv_page(tmp_path / "t.csv")
    cells = re.findall(r"<td [^>]*>([^<]*)</td>", page)
    assert cells == ["srm_crm", "73.4600", "", "base", "70.0000", "x&lt;y"]
    assert "text-align:right" in page.replace(" ", "") and "2 rows" in page
    assert csv_page(tmp_path / "t.csv") == page  # deterministic (fixed Styler uuid)


def test_which_files_get_a_rendering():
    rels = [
        "s/report.md",
        "s/tables/a.md",
        "s/tables/a.tex",
        "s/tables/a.csv",
        "s/tables/shares.csv",
        "s/figures/f.png",
    ]
    assert [html_twin(p) for p in html_sources(rels)] == [
        "s/report.html",
        "s/tables/a.html",
        "s/tables/shares.html",
    ]


def test_srcr_aggregate_html_shows_every_run_as_in_the_csv(tmp_path):
    from suite_helpers import fabricate

    from srcr.cli import main

    results = tmp_path / "results" / "x"
    fabricate(results, {("a", 0): 70.0, ("b", 0): 71.25})
    runs, page = tmp_path / "runs.csv", tmp_path / "runs.html"
    assert (
        main(
            [
                "aggregate",
                "--results",
                str(results),
                "--variants",
                "a,b",
                "--seeds",
                "0",
                "--out",
                str(runs),
                "--html",
                str(page),
            ]
        )
        == 0
    )
    assert page.read_text() == csv_page(runs)
    cells = re.findall(r"<td [^>]*>([^<]*)</td>", page.read_text())
    assert cells[:3] == ["a", "0", "90.0000"] and "71.2500" in cells


def test_an_escaped_pipe_stays_inside_its_table_cell():
    from srcr.report.html_pages import markdown_body

    html = markdown_body(
        "| variant | Δ mIoU |\n|---|---|\n| a | +0.1 n.s.; \\|Δ\\| ≥ 0.41 excluded |\n"
    )
    assert "<td>+0.1 n.s.; |Δ| ≥ 0.41 excluded</td>" in html and html.count("<td>") == 2
