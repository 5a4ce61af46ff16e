"""Contextual Refinement Module (arXiv 2412.08671), reconstructed from its abstract: multi-stage
aggregation, then channel attention (DANet form) and spatial attention (Disentangled Non-Local)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ConvNormAct
from ..registry import register_context
from ._common import NORMS, check_choice, check_float, check_in_channels, check_int, reduced
from .attention import ChannelAttention, DisentangledNonLocal

ORDERS = ("channel_spatial", "spatial_channel", "parallel")
STAGES = ("all", "last")


@register_context("crm")
class CRM(nn.Module):
    """CRM (our reconstruction; the paper's abstract only names the ingredients).

    1. Aggregate: C2, C3, C4 average-pooled to C5's size (adaptive pooling to the exact size, so odd
       inputs work) and concatenated with C5 (sum of the stage widths: 1024 for MSCAN-S/B/L, equal to
       the 32 x 32 positions of a 1024 crop at stride 32, the abstract's channel/space "balance").
    2. Channel attention on the aggregate (DANet form, gamma = 0 at init).
    3. Conv1x1-BN-ReLU to out_channels.
    4. Spatial attention: Disentangled Non-Local (whitened pairwise term, 1/sqrt(C') and
       temperature 0.05, unary term, shared zero-initialised output conv + BN, residual).
    Both attentions start as the identity.

    Options:
      order: 'channel_spatial' (default, steps 1-4). The other orders keep the spatial attention at
        out_channels, so every order has the same parameters: 'spatial_channel' projects first
        (step 3), then DNL, then channel attention on the out_channels map; 'parallel' projects
        first, then x + CA-term(x) + DNL-term(x) (the attentions' residual-free terms summed, DANet
        style, still the identity at init).
      stages: 'all' (default) or 'last' (C5 alone is the aggregate; C2-C4 are not read).
      reduction (2, DNL's query/key/value width C / reduction), temperature (0.05), norm ('bn').
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        *,
        order: str = "channel_spatial",
        stages: str = "all",
        reduction: int = 2,
        temperature: float = 0.05,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        in_channels = check_in_channels("crm", in_channels, out_channels)
        self.order = check_choice("crm", "order", order, ORDERS)
        self.stages = check_choice("crm", "stages", stages, STAGES)
        check_choice("crm", "norm", norm, NORMS)
        reduced("crm", "reduction", out_channels, check_int("crm", "reduction", reduction))
        temperature = check_float("crm", "temperature", temperature)
        agg_channels = sum(in_channels) if stages == "all" else in_channels[-1]
        self.channel_attention = ChannelAttention()
        self.project = ConvNormAct(agg_channels, out_channels, 1, norm=norm)
        self.spatial_attention = DisentangledNonLocal(
            out_channels, reduction, temperature, norm=norm
        )

    def aggregate(self, feats: list[torch.Tensor]) -> torch.Tensor:
        c5 = feats[-1]
        if self.stages == "last":
            return c5
        size = c5.shape[-2:]
        return torch.cat([F.adaptive_avg_pool2d(f, size) for f in feats[:-1]] + [c5], dim=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.aggregate(feats)
        if self.order == "channel_spatial":
            return self.spatial_attention(self.project(self.channel_attention(x)))
        x = self.project(x)
        if self.order == "spatial_channel":
            return self.channel_attention(self.spatial_attention(x))
        return x + self.channel_attention.attend(x) + self.spatial_attention.attend(x)
