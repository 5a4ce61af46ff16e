"""Option checks shared by the context modules: a bad `model.context_options` value becomes a
UserError naming the key, the value and what was expected (not a bare TypeError deep in torch)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch.nn as nn

from ...errors import UserError
from ..layers import build_norm

NORMS = ("bn", "gn", "ln", "none")


def _where(module: str, key: str) -> str:
    return f"model.context_options.{key} (context {module!r})"


def check_in_channels(module: str, in_channels: Any, out_channels: Any) -> list[int]:
    """Four positive stage widths (strides 4, 8, 16, 32) and a positive output width."""
    ok = (
        isinstance(in_channels, (list, tuple))
        and len(in_channels) == 4
        and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in in_channels)
    )
    if not ok:
        raise UserError(
            f"context {module!r}: in_channels must be 4 positive ints (backbone stages at "
            f"strides 4, 8, 16, 32), got {in_channels!r}"
        )
    if not (
        isinstance(out_channels, int) and not isinstance(out_channels, bool) and out_channels > 0
    ):
        raise UserError(
            f"context {module!r}: out_channels (model.fpn_dim) must be a positive int, "
            f"got {out_channels!r}"
        )
    return list(in_channels)


def check_choice(module: str, key: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise UserError(f"{_where(module, key)} = {value!r}; expected one of: {', '.join(choices)}")
    return value


def check_int(module: str, key: str, value: Any, minimum: int = 1) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        raise UserError(f"{_where(module, key)} = {value!r}; expected an int >= {minimum}")
    return value


def check_float(module: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{_where(module, key)} = {value!r}; expected a positive number")
    return float(value)


def check_int_list(module: str, key: str, value: Any) -> list[int]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )
    if not ok:
        raise UserError(
            f"{_where(module, key)} = {value!r}; expected a non-empty list of positive ints"
        )
    return list(value)


def reduced(module: str, key: str, channels: int, reduction: int) -> int:
    """channels // reduction, refusing widths that would round to zero."""
    out = channels // reduction
    if out < 1:
        raise UserError(
            f"{_where(module, key)} = {reduction} leaves no channels from {channels}; "
            f"use a reduction <= {channels}"
        )
    return out


def pooled_norm(norm: str, channels: int) -> nn.Module:
    """The norm of a pooled (possibly 1 x 1) branch. 'gn' takes the largest of 32, 16, 8, 4, 2, 1
    groups that leaves at least 2 channels per group: GroupNorm, like BN, raises in train mode when
    a group holds a single value, which at batch 1 on a 1 x 1 map means a one-channel group."""
    if norm == "gn" and channels >= 2:
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 2)
        return nn.GroupNorm(groups, channels)
    return build_norm(norm, channels)
