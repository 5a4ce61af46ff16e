"""Depthwise 'same' convolutions computed faster on the CPU, with unchanged results.

oneDNN computes the weight gradient of a horizontal (1xK, K > 3) depthwise kernel up to 2.5x
slower than that of the vertical (Kx1) one (MSCAN's 1x21 on 16 channels at 32x32: 2.8 vs 1.1 ms for
forward and backward, one thread). The weight (and bias) gradient of a 1xK conv on x equals that of
the Kx1 conv on x with H and W swapped, so the backward computes it there: the same products,
summed in another order. On maps under 16x16 the two copies and the Python autograd function cost
more than they save, so those keep F.conv2d, as does tracing (fvcore) and any device but the CPU.
Tried and dropped: cutting the taps that only read zero padding on 4x4 and 8x8 maps (exact, but
no measurable gain), and NCHW instead of channels-last (slower in every case measured).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_conv_backward = torch.ops.aten.convolution_backward


def _swap_hw(t: torch.Tensor) -> torch.Tensor:
    # H <-> W as a channels-last tensor: the layout oneDNN's fast depthwise kernels use
    return t.transpose(2, 3).contiguous(memory_format=torch.channels_last)


class _HorizontalDepthwise(torch.autograd.Function):
    """Depthwise 1xK conv; forward as F.conv2d, weight/bias gradients as a Kx1 conv on swapped maps."""

    @staticmethod
    def forward(ctx, x, weight, bias, pad_w: int):
        ctx.save_for_backward(x, weight)
        ctx.pad_w = pad_w
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, padding=(0, pad_w), groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        c, p = x.shape[1], ctx.pad_w
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x:
            gx = _conv_backward(
                grad,
                x,
                weight,
                None,
                [1, 1],
                [0, p],
                [1, 1],
                False,
                [0, 0],
                c,
                [True, False, False],
            )[0]
        if need_w or need_b:
            _, gw, gb = _conv_backward(
                _swap_hw(grad),
                _swap_hw(x),
                weight.transpose(2, 3),
                [c] if ctx.has_bias else None,
                [1, 1],
                [p, 0],
                [1, 1],
                False,
                [0, 0],
                c,
                [False, need_w, need_b and ctx.has_bias],
            )
            gw = gw.transpose(2, 3).contiguous() if need_w else None
        return gx, gw, gb, None


MIN_PIXELS = 256  # measured break-even: 16x16 maps gain, 8x8 and 4x4 lose


def depthwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int]
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding, groups=C)`` for a depthwise stride-1 conv."""
    kh, kw = weight.shape[-2:]
    fast = (
        kh == 1
        and kw > 3
        and padding[0] == 0
        and x.device.type == "cpu"
        and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
        and torch.is_grad_enabled()
        and (x.requires_grad or weight.requires_grad)
        and not torch.jit.is_tracing()
    )
    if fast:
        return _HorizontalDepthwise.apply(x, weight, bias, int(padding[1]))
    return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])
