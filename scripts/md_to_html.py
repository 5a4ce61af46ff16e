"""Render the Markdown that `srcr report` writes (headings, pipe tables, lists, images, paragraphs,
**bold**, `code`) as one standalone HTML page, without a Markdown package: enough to look at a
report in a browser (scripts/report_screenshot.sh).

    python scripts/md_to_html.py reports/synthetic/report.md report.html
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

CSS = """body{font-family:sans-serif;max-width:1500px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}th,td{border:1px solid #bbb;padding:3px 7px}
th{background:#eee}td{text-align:right;white-space:nowrap}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}li{font-size:13px;margin:.15em 0}"""


def inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def convert(md: str) -> str:
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"^(#{1,6}) (.*)", line):
            out.append(f"<h{len(m.group(1))}>{inline(m.group(2))}</h{len(m.group(1))}>")
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells(line)) + "</tr>")
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells(lines[i])) + "</tr>")
                i += 1
            out.append("</table>")
            continue
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "\n".join(out)


def main(argv: list[str]) -> int:
    src, dst = Path(argv[0]), Path(argv[1])
    body = convert(src.read_text())
    dst.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(src.name)}</title>"
                   f"<style>{CSS}</style></head><body>{body}</body></html>\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
