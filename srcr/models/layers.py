"""Uniform conv-norm-activation helpers and the one resize the whole decoder uses."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size, mode: str = "bilinear",
           align_corners: bool | None = True) -> torch.Tensor:
    """Resize to an explicit ``size`` (never ``scale_factor``: odd input sizes must work).

    align_corners defaults to True (the decoder's convention, model.md); nearest ignores it.
    """
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    if mode in ("nearest", "nearest-exact", "area"):
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


def build_norm(norm: str, channels: int) -> nn.Module:
    """'bn' (BatchNorm2d; converted to SyncBN under DDP), 'gn' (GroupNorm, works at batch 1 on 1x1
    maps), 'ln' (GroupNorm with one group = LayerNorm over C,H,W) or 'none'."""
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "gn":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if norm == "ln":
        return nn.GroupNorm(1, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of: bn, gn, ln, none")


def build_act(act: str) -> nn.Module:
    """'relu', 'leaky_relu' (slope 0.01: the default of in-place ABN, which AlignSeg and CCNet use
    as their norm + activation), 'gelu' or 'none'."""
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if act == "gelu":
        return nn.GELU()
    if act == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {act!r}; expected one of: relu, leaky_relu, gelu, none")


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias when normalised) -> norm -> activation; 'same' padding by default."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 1,
                 stride: int = 1, padding: int | tuple[int, int] | None = None, dilation: int = 1,
                 groups: int = 1, norm: str = "bn", act: str = "relu", bias: bool | None = None):
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        if bias is None:
            bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias),
            build_norm(norm, out_channels),
            build_act(act),
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
