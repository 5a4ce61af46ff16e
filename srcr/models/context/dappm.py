"""Deep Aggregation Pyramid Pooling Module (DDRNet, Hong et al., 2021 / IEEE T-ITS 2022)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import build_norm, resize
from ..registry import register_context
from ._common import NORMS, check_choice, check_in_channels, check_int, pooled_norm


def _preact(
    norm: str, cin: int, cout: int, kernel_size: int, pooled: bool = False
) -> nn.Sequential:
    """DDRNet's pre-activation unit: norm -> ReLU -> conv (no bias). The ReLU is not in-place: with
    norm 'none' it would otherwise overwrite the backbone's C5."""
    return nn.Sequential(
        pooled_norm(norm, cin) if pooled else build_norm(norm, cin),
        nn.ReLU(),
        nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False),
    )


@register_context("dappm")
class DAPPM(nn.Module):
    """DDRNet's DAPPM on C5, as in the authors' code.

    Scales s_0..s_4: identity, AvgPool(5, 2, 2), AvgPool(9, 4, 4), AvgPool(17, 8, 8) (PyTorch's
    default count_include_pad=True, as DDRNet) and global average pooling, each followed by the
    pre-activation unit norm-ReLU-Conv1x1(c5 -> branch_channels). Hierarchical fusion:
    y_0 = s_0, y_i = preact Conv3x3(resize(s_i) + y_{i-1}). Output = preact Conv1x1 compression of
    cat[y_0..y_4] (-> out_channels) + preact Conv1x1 shortcut of C5 (-> out_channels). As in
    DDRNet the output is a pre-activation sum (no trailing norm or ReLU); the decoder's next
    conv-BN-ReLU normalises it.

    Deviations: upsampling is bilinear with align_corners=True (the decoder's convention; DDRNet
    used align_corners=False). The pooled branches' norm is `pool_norm` ('gn' by default): at the
    stride-32 sizes of small crops (e.g. a 4 x 6 C5) the global branch and the (17, 8, 8) branch are
    1 x 1 maps, where BN at batch size 1 raises in train mode; GroupNorm works at any batch.
    'bn' restores DDRNet exactly (needs batch > 1).

    Options: branch_channels (128, DDRNet's value for both DDRNet-23-slim and DDRNet-23),
    pool_norm ('gn'), norm ('bn', the unpooled units)."""

    POOLS = ((5, 2, 2), (9, 4, 4), (17, 8, 8))

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        *,
        branch_channels: int = 128,
        pool_norm: str = "gn",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        in_channels = check_in_channels("dappm", in_channels, out_channels)
        branch = check_int("dappm", "branch_channels", branch_channels)
        check_choice("dappm", "pool_norm", pool_norm, NORMS)
        check_choice("dappm", "norm", norm, NORMS)
        c5 = in_channels[-1]
        self.scale0 = _preact(norm, c5, branch, 1)
        pools = [nn.AvgPool2d(k, s, p) for k, s, p in self.POOLS] + [nn.AdaptiveAvgPool2d(1)]
        self.scales = nn.ModuleList(
            nn.Sequential(pool, *_preact(pool_norm, c5, branch, 1, pooled=True)) for pool in pools
        )
        self.process = nn.ModuleList(_preact(norm, branch, branch, 3) for _ in pools)
        self.compression = _preact(norm, branch * (len(pools) + 1), out_channels, 1)
        self.shortcut = _preact(norm, c5, out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        size = x.shape[-2:]
        ys = [self.scale0(x)]
        for scale, process in zip(self.scales, self.process):
            ys.append(process(resize(scale(x), size, align_corners=True) + ys[-1]))
        return self.compression(torch.cat(ys, dim=1)) + self.shortcut(x)
