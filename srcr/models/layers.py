"""Uniform conv-norm-activation helpers and the one resize the whole decoder uses."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F


def resize(
    x: torch.Tensor,
    size: tuple[int, int] | torch.Size,
    mode: str = "bilinear",
    align_corners: bool | None = True,
) -> torch.Tensor:
    """Resize to an explicit ``size`` (never ``scale_factor``: odd input sizes must work).

    align_corners defaults to True (the decoder's convention, docs/model.md); nearest ignores it.
    """
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    if mode in ("nearest", "nearest-exact", "area"):
        return F.interpolate(x, size=size, mode=mode)
    if mode == "bilinear" and align_corners and _matmul_backward_pays(x, size):
        return _BilinearMatmulGrad.apply(x, size)
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


# Upsampling an NCHW map on the CPU: upsample_bilinear2d_backward scatters one output pixel at a
# time (4 ms for the default model's 4x10x128x128 logits, one thread); the same linear map's
# transpose as two small matmuls takes 1.8 ms. Channels-last maps have a fast native backward.
MATMUL_BACKWARD_MIN_PIXELS = 64 * 64


def _matmul_backward_pays(x: torch.Tensor, size: tuple[int, int]) -> bool:
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and x.dtype in (torch.float32, torch.float64)
        and x.requires_grad
        and torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and x.is_contiguous()
        and size[0] * size[1] >= MATMUL_BACKWARD_MIN_PIXELS
        and size[0] >= x.shape[-2]
        and size[1] >= x.shape[-1]
    )


@functools.lru_cache(maxsize=64)
def interp_matrix(n_in: int, n_out: int, dtype: torch.dtype) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear interpolation, align_corners=True, computed as ATen's
    CPU kernel does (source index = float scale (n_in-1)/(n_out-1) times the output index)."""
    scale = (
        torch.tensor(n_in - 1, dtype=dtype) / max(n_out - 1, 1)
        if n_out > 1
        else torch.zeros((), dtype=dtype)
    )
    src = torch.arange(n_out, dtype=dtype) * scale
    i0 = src.floor().long().clamp(max=n_in - 1)
    lam1 = (src - i0.to(dtype)).clamp(0, 1)
    m = torch.zeros(n_out, n_in, dtype=dtype)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1 - lam1, accumulate=True)
    m.index_put_((rows, (i0 + 1).clamp(max=n_in - 1)), lam1, accumulate=True)
    return m


class _BilinearMatmulGrad(torch.autograd.Function):
    """F.interpolate(bilinear, align_corners=True) forward (bit-identical); the backward applies the
    transposed interpolation matrices: grad_in = Ah^T @ grad_out @ Aw."""

    @staticmethod
    def forward(ctx, x, size):
        ctx.in_size = tuple(x.shape[-2:])
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)

    @staticmethod
    def backward(ctx, grad):
        (h, w), (hh, ww) = ctx.in_size, grad.shape[-2:]
        n, c = grad.shape[:2]
        ah = interp_matrix(h, hh, grad.dtype)
        aw = interp_matrix(w, ww, grad.dtype)
        t = torch.matmul(grad.reshape(n * c, hh, ww), aw)  # (NC, H, w)
        return torch.matmul(ah.t(), t).view(n, c, h, w), None


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

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
        norm: str = "bn",
        act: str = "relu",
        bias: bool | None = None,
    ):
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        if bias is None:
            bias = norm == "none"
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias
            ),
            build_norm(norm, out_channels),
            build_act(act),
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
