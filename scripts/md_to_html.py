"""Render a Markdown report of `srcr report` (or a CSV table) as one standalone HTML page, its
figures embedded: the page `srcr report` itself writes next to each .md (srcr.report.html_pages),
for a file edited by hand or written by an older srcr (scripts/report_screenshot.sh).

    python scripts/md_to_html.py reports/synthetic/report.md [report.html]
"""

from __future__ import annotations

import sys
from pathlib import Path

# srcr of this checkout, also when it is not installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srcr.report.html_pages import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
