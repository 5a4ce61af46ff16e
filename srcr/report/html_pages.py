"""Self-contained HTML renderings of the report's Markdown and CSV files.

Snakemake's HTML report shows images, PDFs and HTML inline but offers every other file (.md, .csv)
as a download; so each report page and table also gets an HTML twin, which the workflow registers:

    OUT/SUITE/report.html, errors.html, tables/TABLE.html   from the .md files (this converter)
    OUT/SUITE/tables/NAME.html                   from each .csv without a .md twin (pandas Styler)
    RESULTS/runs.html                            from runs.csv (srcr aggregate --html)

The pages load nothing: every image a Markdown file references (whatever its name) is embedded as a
data URI. Snakemake shows an HTML result in an iframe whose source is the page as a base64 data URI,
and Chromium does not load a data URI over 2 MiB; so the figures are shrunk (fewer pixels, 256
colours) until the page fits, and the full-size PNGs stay in the report's figure categories. The
converter covers the Markdown subset srcr writes: headings, pipe tables, "- " lists, images, links,
**bold**, `code` and paragraphs; no Markdown package needed.

    python -m srcr.report.html_pages reports/synthetic/report.md [report.html]
"""

from __future__ import annotations

import base64
import html
import io
import re
import sys
from pathlib import Path

from ..errors import UserError
from ..utils.io import write_text

# Chromium refuses data: URIs over 2 MiB; Snakemake's base64 makes a page 4/3 as long, plus a prefix
MAX_PAGE_BYTES = 1_500_000
MIN_FIGURE_WIDTH = 320

CSS = """body{font-family:sans-serif;max-width:1500px;margin:1em auto;padding:0 1em;color:#222}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 7px}th{background:#eee}
td{text-align:right;white-space:nowrap}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}li{font-size:13px;margin:.15em 0}"""

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_RULE = re.compile(r"^\|[\s:|-]+\|$")


def html_sources(paths: list) -> list:
    """The report files (paths, str or Path) that get an HTML rendering, in their order: every .md,
    and every .csv that is not the data of a .md table (same name)."""
    names = {str(p) for p in paths}
    return [
        p
        for p in paths
        if str(p).endswith(".md") or (str(p).endswith(".csv") and f"{str(p)[:-4]}.md" not in names)
    ]


def html_twin(path: str) -> str:
    """Where the HTML rendering of one report file goes: next to it, .html."""
    return str(path).rsplit(".", 1)[0] + ".html"


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def _inline(text: str, images: dict[str, str]) -> str:
    text = html.escape(text, quote=False)
    text = _IMAGE.sub(
        lambda m: f'<img alt="{m.group(1)}" src="{images.get(m.group(2), m.group(2))}">', text
    )
    text = re.sub(
        r"\[([^\]]+)\]\(([^)]+)\)",
        lambda m: f'<a href="{_md_link(m.group(2))}">{m.group(1)}</a>',
        text,
    )
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _md_link(target: str) -> str:
    """A link to another report page points at its HTML twin (written next to it)."""
    return re.sub(r"\.md$", ".html", target) if "://" not in target else target


def _cells(line: str) -> list[str]:
    """A table row's cells; an escaped pipe (the tables' "\\|Δ\\| excluded") stays in its cell."""
    row = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _table(lines: list[str], images: dict[str, str]) -> str:
    head = "".join(f"<th>{_inline(c, images)}</th>" for c in _cells(lines[0]))
    rows = [
        "<tr>" + "".join(f"<td>{_inline(c, images)}</td>" for c in _cells(ln)) + "</tr>"
        for ln in lines[2:]
    ]
    return "<div class='scroll'><table><tr>" + head + "</tr>\n" + "\n".join(rows) + "</table></div>"


def markdown_body(md: str, images: dict[str, str] | None = None) -> str:
    """HTML for srcr's Markdown; ``images`` maps an image reference to the src to use instead."""
    images = images or {}
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"^(#{1,6}) (.*)", line):
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2), images)}</h{n}>")
        elif line.startswith("|") and i + 1 < len(lines) and _RULE.match(lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j], images))
            i = j
            continue
        elif line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            items = "".join(f"<li>{_inline(ln[2:], images)}</li>" for ln in lines[i:j])
            out.append(f"<ul>{items}</ul>")
            i = j
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line, images)}</p>")
        i += 1
    return "\n".join(out)


def _png_data(data: bytes, width: int | None = None) -> bytes:
    """The PNG ``data``, at ``width`` pixels (aspect kept) and 256 colours when a width is given."""
    if width is None:
        return data
    from PIL import Image

    im = Image.open(io.BytesIO(data)).convert("RGB")
    im = im.resize((width, max(1, round(im.height * width / im.width))), Image.LANCZOS)
    buf = io.BytesIO()
    im.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _fit_figure(path: Path, limit: int) -> bytes:
    """The figure as PNG bytes of at most ``limit`` bytes where a width >= MIN_FIGURE_WIDTH allows:
    as it is when it fits, else shrunk step by step."""
    from PIL import Image

    data = path.read_bytes()
    if len(data) <= limit:
        return data
    width = min(Image.open(path).width, 1600)
    small = _png_data(data, width)
    while len(small) > limit and width > MIN_FIGURE_WIDTH:
        width = max(MIN_FIGURE_WIDTH, int(width * 0.8))
        small = _png_data(data, width)
    return small


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def embedded_images(md: str, base: Path, source: Path, budget: int) -> dict[str, str]:
    """Every image ``md`` references, read relative to ``base``, as a data URI, all within
    ``budget`` bytes (base64 included): smallest file first, each gets an equal share of what is
    left, so what a small figure does not need goes to the larger ones."""
    refs = list(dict.fromkeys(m.group(2) for m in _IMAGE.finditer(md) if "://" not in m.group(2)))
    paths = {ref: base / ref for ref in refs}
    for ref, path in paths.items():  # every reference checked before any work
        if not path.is_file():
            raise UserError(f"{source}: image {ref!r} not found (looked for {path})")
        if path.suffix.lower() != ".png":
            raise UserError(f"{source}: image {ref!r}: only PNG images can be embedded")
    uris, left = {}, budget
    for k, ref in enumerate(sorted(refs, key=lambda r: (paths[r].stat().st_size, r))):
        uris[ref] = _data_uri(_fit_figure(paths[ref], max(1, left // (len(refs) - k) * 3 // 4)))
        left -= len(uris[ref])
    return uris


def markdown_page(md_path: Path) -> str:
    """A standalone HTML page of one Markdown file, its images embedded (within MAX_PAGE_BYTES)."""
    md = md_path.read_text()
    text_only = page(md_path.name, markdown_body(md))
    budget = MAX_PAGE_BYTES - len(text_only.encode())
    images = embedded_images(md, md_path.parent, md_path, budget)
    text = page(md_path.name, markdown_body(md, images))
    if len(text.encode()) > MAX_PAGE_BYTES:  # figures at their smallest: still written, but say so
        print(
            f"warning: {md_path}: HTML page of {len(text.encode())} bytes; browsers may not show "
            "it inline in Snakemake's report",
            file=sys.stderr,
        )
    return text


def csv_page(csv_path: Path) -> str:
    """A standalone HTML page of one CSV file: its cells as written (no re-rounding), numbers
    right-aligned."""
    import pandas as pd

    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{csv_path}: not a readable CSV table ({e})") from None
    numeric = {
        c for c in df.columns if len(df) and pd.to_numeric(df[c], errors="coerce").notna().all()
    }
    align = {
        c: [{"selector": "td", "props": f"text-align:{'right' if c in numeric else 'left'}"}]
        for c in df.columns
    }
    # a fixed uuid: the same CSV gives the same page
    styler = df.style.set_uuid("csv").hide(axis="index").format(escape="html")
    styler = styler.set_table_styles(align)
    body = (
        f"<h1>{html.escape(csv_path.name)}</h1>"
        f"<p>{len(df)} rows; the cells as in the CSV file.</p>"
        f"<div class='scroll'>{styler.to_html()}</div>"
    )
    return page(csv_path.name, body)


def write_html_twin(src: Path, dst: Path | None = None) -> Path:
    """Write the HTML rendering of a .md or .csv file (default: next to it, .html), atomically."""
    src = Path(src)
    dst = Path(dst) if dst else Path(html_twin(src))
    if not src.is_file():
        raise UserError(f"{src}: no such file to render as HTML")
    if src.suffix == ".md":
        text = markdown_page(src)
    elif src.suffix == ".csv":
        text = csv_page(src)
    else:
        raise UserError(f"{src}: expected a .md or .csv file to render as HTML")
    write_text(dst, text)
    return dst


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.rsplit("\n\n", 1)[-1], file=sys.stderr)
        return 2
    try:
        print(write_html_twin(Path(argv[0]), Path(argv[1]) if len(argv) == 2 else None))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
