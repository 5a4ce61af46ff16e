"""Prediction heads: the segmentation classifier, mmseg's auxiliary FCN head (Long et al., CVPR
2015; UPerNet's auxiliary loss on C4) and the embedding head of the pixel contrastive loss (Wang et
al., "Exploring Cross-Image Pixel Contrast for Semantic Segmentation", ICCV 2021)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ConvNormAct


def _classifier(in_channels: int, num_classes: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.normal_(conv.weight, std=0.01)  # mmseg's conv_seg init
    nn.init.zeros_(conv.bias)
    return conv


class SegHead(nn.Sequential):
    """Dropout2d(p) -> Conv1x1(in -> num_classes)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__(nn.Dropout2d(dropout), _classifier(in_channels, num_classes))


class FCNHead(nn.Sequential):
    """mmseg's FCNHead with one conv (num_convs=1, concat_input=False): Conv3x3-norm-ReLU(in -> channels)
    -> Dropout2d(p) -> Conv1x1(channels -> num_classes)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        dropout: float = 0.1,
        norm: str = "bn",
    ):
        super().__init__(
            ConvNormAct(in_channels, channels, 3, norm=norm),
            nn.Dropout2d(dropout),
            _classifier(channels, num_classes),
        )


class EmbedHead(nn.Module):
    """Conv1x1(in -> embed_dim), then L2 normalisation over channels (docs/model.md)."""

    def __init__(self, in_channels: int, embed_dim: int = 256):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(x).float(), p=2, dim=1)
