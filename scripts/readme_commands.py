"""Print one of the README's set-up commands, so that CI runs exactly what the README shows.

    python3 scripts/readme_commands.py install   # the install command of set-up step 1
    python3 scripts/readme_commands.py suite     # the default-suite command of step 1
    python3 scripts/readme_commands.py test      # the test command (step 2)

The commands are read from the first ``bash`` block under the README's "## Set up, run, test"
heading: comment lines are skipped and backslash continuations joined. The block must hold
exactly these three commands, in this order; anything else is an error naming what was found,
so an edited README cannot silently leave CI running something else (tests/test_readme_ci.py).
Standard library only: CI calls it before any environment exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Set up, run, test"
# what identifies each command; the order is the README's
KINDS = {
    "install": re.compile(r"^python3 -m venv \.venv && .*pip install .*$"),
    "suite": re.compile(r"^\.venv/bin/snakemake --cores \d+$"),
    "test": re.compile(r"^\.venv/bin/python -m pytest\b.*$"),
}


def setup_block(text: str) -> list[str]:
    """The lines of the first fenced bash block after HEADING."""
    start = text.find(f"\n{HEADING}\n")
    if start < 0:
        raise ValueError(f"README.md: no '{HEADING}' heading")
    fence = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    if fence is None:
        raise ValueError(f"README.md: no ```bash block under '{HEADING}'")
    return fence.group(1).splitlines()


def commands(text: str) -> dict[str, str]:
    """The set-up block's commands by kind: continuations joined, comments dropped."""
    found, current = [], ""
    for line in setup_block(text):
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += stripped[:-1].rstrip() + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            found.append(current)
            current = ""
    if len(found) != len(KINDS) or not all(
        pattern.match(cmd) for pattern, cmd in zip(KINDS.values(), found, strict=False)
    ):
        expected = ", ".join(f"{k} ({p.pattern})" for k, p in KINDS.items())
        raise ValueError(
            f"README.md: the set-up block under '{HEADING}' must hold, in order, {expected}; "
            f"found {found}"
        )
    return dict(zip(KINDS, found, strict=True))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: readme_commands.py {{{'|'.join(KINDS)}}}", file=sys.stderr)
        return 2
    try:
        print(commands(README.read_text(encoding="utf-8"))[argv[0]])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
