"""One report for every checkpoint loader: what did not fit, named, before anything is loaded."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UserError


def few(keys: Sequence[str], n: int = 5) -> str:
    """The first ``n`` keys (sorted) and how many there are in all."""
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def raise_on_mismatch(
    prefix: str,
    mismatched: Sequence[str],
    missing: Sequence[str],
    unexpected: Sequence[str],
    what: str = "model",
) -> None:
    """Raise UserError ``"{prefix}: shape mismatches ...; missing keys ...; unexpected keys ..."``
    if any list is non-empty."""
    problems = []
    if mismatched:
        problems.append(f"shape mismatches (a different {what} size?): {few(mismatched, 3)}")
    if missing:
        problems.append(f"missing keys: {few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {few(unexpected)}")
    if problems:
        raise UserError(f"{prefix}: " + "; ".join(problems))
