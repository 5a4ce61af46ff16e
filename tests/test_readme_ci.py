"""CI runs the README's own set-up commands, not a variant of them (issue 20).

`.ci/run` reads the install, suite and test commands from the README's set-up block through
`scripts/readme_commands.py`; these tests fail when the README block stops parsing, when CI
stops reading it, or when CI installs or tests anything of its own before the README's commands.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "readme_commands.py"


def _module():
    spec = importlib.util.spec_from_file_location("readme_commands", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ci_lines() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def test_readme_block_gives_the_three_commands():
    cmds = _module().commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert list(cmds) == ["install", "suite", "test"]
    assert "pip install -e '.[test]'" in cmds["install"]
    assert cmds["suite"] == ".venv/bin/snakemake --cores 2"
    assert cmds["test"].startswith(".venv/bin/python -m pytest")


def test_ci_runs_the_readme_commands_first_and_nothing_of_its_own_before():
    lines = _ci_lines()
    runs = {
        kind: f'bash -euo pipefail -c "$(readme {kind})' for kind in ("install", "suite", "test")
    }
    at = {}
    for kind, prefix in runs.items():
        hits = [i for i, ln in enumerate(lines) if ln.startswith(prefix)]
        assert len(hits) == 1, f".ci/run must run the README's {kind} command once: {prefix}..."
        at[kind] = hits[0]
    assert at["install"] < at["suite"] < at["test"]
    # exactly as the README has them; the test output may be kept for the browser step
    assert lines[at["install"]] == 'bash -euo pipefail -c "$(readme install)"'
    assert re.fullmatch(
        r'bash -euo pipefail -c "\$\(readme test\)"( 2>&1 \| tee \S+)?', lines[at["test"]]
    )
    before = lines[: at["test"]]
    own = [
        ln for ln in before if re.search(r"pip install|pytest|apt-get", ln) and "readme" not in ln
    ]
    assert not own, f".ci/run installs or tests something before the README's commands: {own}"
    assert any("readme_commands.py" in ln for ln in lines)


def test_cli_prints_each_command_and_refuses_unknown_kinds():
    out = subprocess.run([sys.executable, str(SCRIPT), "test"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith(".venv/bin/python -m pytest")
    bad = subprocess.run([sys.executable, str(SCRIPT), "lint"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


@pytest.mark.parametrize(
    "block",
    [
        # a split install: four commands where the README promises three
        "python3 -m venv .venv && .venv/bin/pip install torch\n.venv/bin/pip install -e .\n"
        ".venv/bin/snakemake --cores 2\n.venv/bin/python -m pytest -q\n",
        # the suite and the tests swapped
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]'\n"
        ".venv/bin/python -m pytest -q\n.venv/bin/snakemake --cores 2\n",
    ],
)
def test_a_changed_readme_block_is_an_error_naming_what_it_found(block):
    text = f"# t\n\n## Set up, run, test\n\n```bash\n# c\n{block}```\n"
    with pytest.raises(ValueError, match=r"must hold, in order.*found \[.python3 -m venv"):
        _module().commands(text)


def test_continuations_are_joined_and_comments_dropped():
    text = (
        "## Set up, run, test\n\n```bash\n# 1. install\npython3 -m venv .venv && "
        ".venv/bin/pip install torch \\\n  && .venv/bin/pip install -e '.[test]'\n"
        ".venv/bin/snakemake --cores 2\n\n# 2.\n.venv/bin/python -m pytest -q\n```\n"
    )
    cmds = _module().commands("\n" + text)
    assert cmds["install"] == (
        "python3 -m venv .venv && .venv/bin/pip install torch && .venv/bin/pip install -e '.[test]'"
    )
