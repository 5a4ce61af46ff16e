"""Pyramid Pooling Module (PSPNet, Zhao et al., CVPR 2017), in the UPerNet decoder form (CSAIL's
UPerNet, mmseg's UPerHead): Conv-BN-ReLU branches and a 3x3 bottleneck. SFNet's own PSPModule
differs: its branches have no ReLU (pool-conv-BN), its bottleneck is a 1x1 conv over
cat[branches, C5] followed by Dropout2d(0.1)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ConvNormAct, resize
from ..registry import register_context
from ._common import NORMS, check_choice, check_in_channels, check_int, check_int_list, pooled_norm


@register_context("ppm")
class PPM(nn.Module):
    """PSPNet pyramid pooling on C5: for each bin b in `bins` (1, 2, 3, 6) AdaptiveAvgPool(b) ->
    Conv1x1-norm-ReLU(c5 -> branch_channels) -> bilinear resize back (align_corners=True); then the
    bottleneck Conv3x3-BN-ReLU(c5 + len(bins) * branch_channels -> out_channels) over
    cat[C5, branches].

    Options:
      bins (1, 2, 3, 6).
      branch_channels (default out_channels, as UPerNet's and SFNet's PPM; PSPNet used c5 / 4).
      pool_norm ('gn'): the norm of the pooled branches. PSPNet used BN, but BN on the 1 x 1 map of
        the bin-1 branch has a single value per channel at batch size 1 and raises in train mode
        (and is a poor estimate at small batches); GroupNorm (32 groups, fewer when needed to keep
        at least 2 channels per group) normalises each sample over channel groups and works at any
        batch.
        'bn' restores PSPNet exactly (needs batch > 1); 'ln' and 'none' are also accepted.
      norm ('bn'): the bottleneck's norm.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        *,
        bins=(1, 2, 3, 6),
        branch_channels: int | None = None,
        pool_norm: str = "gn",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        in_channels = check_in_channels("ppm", in_channels, out_channels)
        self.bins = check_int_list("ppm", "bins", bins)
        branch = (
            out_channels
            if branch_channels is None
            else check_int("ppm", "branch_channels", branch_channels)
        )
        check_choice("ppm", "pool_norm", pool_norm, NORMS)
        check_choice("ppm", "norm", norm, NORMS)
        c5 = in_channels[-1]
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c5, branch, 1, bias=pool_norm == "none"),
                pooled_norm(pool_norm, branch),
                nn.ReLU(inplace=True),
            )
            for _ in self.bins
        )
        self.bottleneck = ConvNormAct(c5 + len(self.bins) * branch, out_channels, 3, norm=norm)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        size = x.shape[-2:]
        outs = [x]
        for b, branch in zip(self.bins, self.branches):
            outs.append(resize(branch(F.adaptive_avg_pool2d(x, b)), size, align_corners=True))
        return self.bottleneck(torch.cat(outs, dim=1))
