#!/usr/bin/env bash
# Look at a report as a reader would: render it in headless Chromium and take a screenshot.
#
#   scripts/report_screenshot.sh PAGE.html|PAGE.md OUT.png [WIDTHxHEIGHT]
#
# A .md file (e.g. reports/synthetic/report.md) is first rendered to HTML next to it
# (scripts/md_to_html.py, figures embedded), as srcr report does itself; an .html file (e.g. the output of
# `snakemake --report report.html`) is opened as is. Needs Debian's chromium
# (apt-get install -y chromium). Default window 1500x4000: the top of a long report. Scripts on the
# page (the React app of a Snakemake report) get 10 s of virtual time to render.
set -euo pipefail
page=$1; shot=$2; size=${3:-1500x4000}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
if [[ $page == *.md ]]; then
  html="${page%.md}.html"
  "$py" "$here/md_to_html.py" "$page" "$html"
  page=$html
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n $browser ]] || { echo "no chromium found: apt-get install -y chromium" >&2; exit 2; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=10000 --window-size="${size/x/,}" \
  --screenshot="$(realpath -m "$shot")" "file://$(realpath "$page")" 2>/dev/null
test -s "$shot" && echo "screenshot: $shot"
