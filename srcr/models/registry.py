"""Plain name -> class dicts, one per pluggable decoder slot, filled by the decorators below."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch.nn as nn

T = TypeVar("T", bound=type[nn.Module])

# align: cls(channels, **options); forward(low, high) -> fused map at low's size
ALIGN_MODULES: dict[str, type[nn.Module]] = {}
# context: cls(in_channels: list[int], out_channels: int, **options); forward(feats) -> map at stride 32
CONTEXT_MODULES: dict[str, type[nn.Module]] = {}


def _register(table: dict[str, type[nn.Module]], slot: str, name: str) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        if name in table:
            raise KeyError(f"{slot} module {name!r} registered twice ({table[name].__name__} and {cls.__name__})")
        table[name] = cls
        return cls

    return deco


def register_align(name: str) -> Callable[[T], T]:
    return _register(ALIGN_MODULES, "align", name)


def register_context(name: str) -> Callable[[T], T]:
    return _register(CONTEXT_MODULES, "context", name)
