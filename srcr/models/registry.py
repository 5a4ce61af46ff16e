"""Plain name -> class dicts, one per pluggable decoder slot, filled by the decorators below.

A name must first be declared in srcr.module_names (read by the report and the workflow without
torch); ``register_align`` gives the class its ``offset_kinds`` from there."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import torch.nn as nn

from ..module_names import ALIGNS, CONTEXTS

T = TypeVar("T", bound=type[nn.Module])

# align: cls(channels, **options); forward(low, high) -> fused map at low's size
ALIGN_MODULES: dict[str, type[nn.Module]] = {}
# context: cls(in_channels: list[int], out_channels: int, **options); forward(feats) -> map at stride 32
CONTEXT_MODULES: dict[str, type[nn.Module]] = {}


def _register(
    table: dict[str, type[nn.Module]], slot: str, name: str, declared: Iterable[str]
) -> Callable[[T], T]:
    if name not in declared:
        raise KeyError(
            f"{slot} module {name!r} is not declared in srcr/module_names.py "
            f"(declared: {', '.join(declared)})"
        )

    def deco(cls: T) -> T:
        if name in table:
            raise KeyError(
                f"{slot} module {name!r} registered twice ({table[name].__name__} and {cls.__name__})"
            )
        table[name] = cls
        return cls

    return deco


def register_align(name: str) -> Callable[[T], T]:
    """Register an alignment module; its class gets ``offset_kinds = ALIGNS[name]``."""
    register = _register(ALIGN_MODULES, "align", name, ALIGNS)

    def deco(cls: T) -> T:
        cls.offset_kinds = ALIGNS[name]
        return register(cls)

    return deco


def register_context(name: str) -> Callable[[T], T]:
    return _register(CONTEXT_MODULES, "context", name, CONTEXTS)
