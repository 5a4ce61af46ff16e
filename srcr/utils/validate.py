"""Checks of config values that name the key and what was expected."""

from __future__ import annotations

import math
from typing import Any

from ..errors import UserError


def check_number(
    path: str,
    value: Any,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
    integer: bool = False,
) -> None:
    """Raise UserError naming ``path`` unless ``value`` is a finite number within the bounds."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
        raise UserError(f"{path}: expected {kind}, got {value!r}")
    if positive and value <= 0:
        raise UserError(f"{path}: expected {kind} > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise UserError(f"{path}: expected {kind} >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise UserError(f"{path}: expected {kind} <= {maximum}, got {value!r}")


def check_keys(path: str, given: Any, allowed: Any) -> None:
    """Raise UserError naming ``path`` unless ``given`` is a mapping whose keys are all in ``allowed``."""
    if not isinstance(given, dict):
        raise UserError(f"{path}: expected a mapping, got {given!r}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise UserError(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
