"""`--run` groups: a command that serves several runs in one process takes each as `--run ...`
followed by that run's own `--set`s; the `--set`s before the first `--run` apply to every run."""

from __future__ import annotations

import argparse

from .errors import UserError


class _RunAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        namespace.runs = [*(namespace.runs or []), (values, [])]


class _SetAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        if namespace.runs:
            namespace.runs[-1][1].append(values)
        else:
            namespace.overrides = [*(namespace.overrides or []), values]


def add_set_and_run(
    parser: argparse.ArgumentParser,
    run_metavar: str | tuple[str, ...],
    run_help: str,
    set_help: str,
) -> None:
    """``--set KEY=VALUE`` (repeatable) and ``--run`` (repeatable, ``len(run_metavar)`` values)."""
    nargs = len(run_metavar) if isinstance(run_metavar, tuple) else None
    parser.add_argument(
        "--set", dest="overrides", action=_SetAction, default=[], metavar="KEY=VALUE", help=set_help
    )
    parser.add_argument(
        "--run",
        dest="runs",
        action=_RunAction,
        default=[],
        nargs=nargs,
        metavar=run_metavar,
        help=run_help + "; the --set options after it apply to this run only, those before "
        "the first --run to every run (repeatable)",
    )


def run_configs(config_path: str, common: list[str], runs: list) -> list[tuple[dict, object]]:
    """(resolved config, the --run values) of every run; a bad override names its run."""
    from .config import load_config

    configs = []
    for values, own in runs:
        try:
            configs.append((load_config(config_path, list(common) + list(own)), values))
        except UserError as e:
            shown = " ".join(values) if isinstance(values, list) else values
            raise UserError(f"--run {shown}: {e}") from None
    return configs


def check_distinct(dirs, what: str) -> None:
    """Each ``--run`` directory once (two runs writing one directory would overwrite each other)."""
    from pathlib import Path

    seen = set()
    for d in dirs:
        key = Path(d).resolve()
        if key in seen:
            raise UserError(f"--run {d}: the same {what} directory is given twice")
        seen.add(key)
