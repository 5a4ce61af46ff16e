"""Everything README.md and docs/*.md point at exists in the repository: every relative Markdown
link, and every repository path they name (placeholders such as SUITE, NAME or {a,b} aside)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "config" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# a path into one of the repository's own top-level folders, anywhere in the text
TOP = ("srcr", "docs", "config", "tests", "scripts", "workflow", "ablations", "profiles", ".ci")
PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(map(re.escape, TOP)) + r")/[\w./{},*-]*)")
PLACEHOLDER = re.compile(r"[{}*]|\.\.\.|(?:^|[/_])[A-Z]{2,}(?=[./_]|$)")


def _links(text: str) -> list[str]:
    return [
        t.split("#")[0]
        for t in LINK.findall(text)
        if not re.match(r"[a-z]+:", t) and not t.startswith("#")
    ]


def _paths(text: str) -> list[str]:
    out = []
    for p in PATH.findall(text):
        p = p.rstrip(".,;:")
        if p and (not PLACEHOLDER.search(p) or (REPO / p).exists()):
            out.append(p)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    missing = [t for t in _links(doc.read_text()) if t and not (doc.parent / t).exists()]
    assert not missing, f"{doc.relative_to(REPO)}: links to missing files: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_named_repository_paths_exist(doc):
    missing = sorted({p for p in _paths(doc.read_text()) if not (REPO / p).exists()})
    assert not missing, f"{doc.relative_to(REPO)}: names paths that do not exist: {missing}"


def test_the_checks_catch_a_missing_file():
    text = "see [the spec](docs/nowhere.md) and `srcr/models/nowhere.py`, not `results/NAME/x`"
    assert _links(text) == ["docs/nowhere.md"]
    assert _paths(text) == ["docs/nowhere.md", "srcr/models/nowhere.py"]
    assert _paths("workflow/report/NAME.rst, config/suite_DATASET.yaml, srcr/{a,b}.py") == []
    assert _paths("config/README.md") == ["config/README.md"]  # upper case, but a real file


def test_config_readme_lists_every_config():
    listed = set(re.findall(r"\(([\w.]+\.yaml)\)", (REPO / "config" / "README.md").read_text()))
    assert listed == {p.name for p in (REPO / "config").glob("*.yaml")}
