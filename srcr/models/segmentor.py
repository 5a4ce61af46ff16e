"""The segmentation network of arXiv 2412.08671 as reconstructed here: a timm backbone, the FPN
decoder with an alignment module (SRM by default) at each top-down step and a context module (CRM by
default) at stride 32, a segmentation head, an optional auxiliary FCN head on C4 and an optional
embedding head for the pixel contrastive loss."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError
from .backbones.build import build_backbone
from .decoder import FPNDecoder, shift_directions
from .heads import EmbedHead, FCNHead, SegHead
from .init_streams import init_stream, seeded_init
from .layers import resize
from .registry import ALIGN_MODULES, CONTEXT_MODULES

MODEL_DEFAULTS: dict[str, Any] = {
    "backbone": "mscan_s",
    "backbone_options": {},
    "pretrained": None,
    "align": "srm",
    "align_options": {},
    "context": "crm",
    "context_options": {},
    "fpn_dim": 256,
    "num_classes": None,  # required
    "aux_head": True,
    "align_corners": True,  # final logit upsampling (SegNeXt's head: False); the decoder's own are True
    "embed_dim": 256,
    "dropout": 0.1,
    "norm": "bn",
    "coarse_shift": 0.0,  # control handicap (in coarse cells), not part of any model
}
DECODER_NORMS = ("bn", "gn")
STEP_NAMES = ("s16", "s8", "s4")


class Segmentor(nn.Module):
    """backbone -> decoder -> head (+ aux_head on C4, + embed_head on the fused stride-4 map).

    Eval mode: ``model(images)`` -> logits (B, K, H, W) at the input size. Train mode: a dict with
    ``logits`` (input size), ``logits_s4`` (stride 4, before the final upsample), ``aux`` (input
    size, if aux_head) and ``embed`` (B, embed_dim, H4, W4, L2-normalised, if embed_head).
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder: FPNDecoder,
        head: nn.Module,
        aux_head: nn.Module | None = None,
        embed_head: nn.Module | None = None,
        align_corners: bool = True,
    ):
        super().__init__()
        # bilinear convention of the logits' upsampling to the input size: False is the
        # half-pixel geometry of strided convolutions (mmseg's heads, SegNeXt's)
        self.align_corners = bool(align_corners)
        self.backbone = backbone
        self.decoder = decoder
        self.head = head
        self.aux_head = aux_head
        self.embed_head = embed_head
        self.feature_cache = None  # a FeatureCache when several models share this backbone

    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The 4 backbone maps (strides 4, 8, 16, 32), NCHW."""
        if self.feature_cache is not None:
            feats = self.feature_cache.extract(self.backbone, images)
        else:
            feats = list(self.backbone(images))
        if getattr(self.backbone, "feature_format", "NCHW") == "NHWC":
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        return feats

    def forward(self, images: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        size = images.shape[-2:]
        feats = self.extract(images)
        signs = shift_directions(images) if self.decoder.coarse_shift else None
        fused = self.decoder(feats, signs)
        logits_s4 = self.head(fused)
        # NCHW before the upsample: a channels-last full-resolution map makes the loss's softmax
        # over classes strided (on the CPU 1.8x slower than the contiguous one)
        logits = resize(
            logits_s4.contiguous(), size, mode="bilinear", align_corners=self.align_corners
        )
        if not self.training:
            return logits
        out = {"logits": logits, "logits_s4": logits_s4}
        if self.aux_head is not None:
            out["aux"] = resize(
                self.aux_head(feats[2]), size, mode="bilinear", align_corners=self.align_corners
            )
        if self.embed_head is not None:
            out["embed"] = self.embed_head(fused)
        return out

    def align_steps(self) -> OrderedDict[str, nn.Module]:
        """``{"s16": module, "s8": module, "s4": module}``, in top-down order."""
        return OrderedDict(zip(STEP_NAMES, self.decoder.align))

    def offsets(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{step: module.last_offsets}`` for the steps holding offsets (none for bilinear, none
        before the first forward)."""
        return {
            step: m.last_offsets
            for step, m in self.align_steps().items()
            if getattr(m, "last_offsets", None) is not None
        }


def _check_int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"model.{key}: expected an integer >= {minimum}; got {value!r}")
    return value


def _check_dict(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"model.{key}: expected a mapping of options; got {value!r}")
    return dict(value)


def resolve_model_cfg(model_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The config's ``model:`` section with defaults filled in and every value checked."""
    if model_cfg is None:
        model_cfg = {}
    if not isinstance(model_cfg, dict):
        raise UserError(f"model: expected a mapping; got {type(model_cfg).__name__}")
    unknown = [k for k in model_cfg if k not in MODEL_DEFAULTS]
    if unknown:
        raise UserError(
            f"model: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: "
            f"{', '.join(MODEL_DEFAULTS)}"
        )
    cfg = {**MODEL_DEFAULTS, **model_cfg}
    if cfg["num_classes"] is None:
        raise UserError("model.num_classes: required (the number of classes to predict)")
    _check_int("num_classes", cfg["num_classes"], 1)
    _check_int("fpn_dim", cfg["fpn_dim"], 1)
    _check_int("embed_dim", cfg["embed_dim"], 0)
    for key in ("backbone_options", "align_options", "context_options"):
        cfg[key] = _check_dict(key, cfg[key])
    if not isinstance(cfg["backbone"], str):
        raise UserError(f"model.backbone: expected a timm model name; got {cfg['backbone']!r}")
    if cfg["pretrained"] is not None and not isinstance(cfg["pretrained"], str):
        raise UserError(
            f"model.pretrained: expected a local checkpoint path or null; got {cfg['pretrained']!r}"
        )
    if cfg["align"] not in ALIGN_MODULES:
        raise UserError(
            f"model.align: unknown alignment module {cfg['align']!r}; expected one of: "
            f"{', '.join(sorted(ALIGN_MODULES))}"
        )
    if cfg["context"] not in CONTEXT_MODULES:
        raise UserError(
            f"model.context: unknown context module {cfg['context']!r}; expected one of: "
            f"{', '.join(sorted(CONTEXT_MODULES))}"
        )
    for key in ("aux_head", "align_corners"):
        if not isinstance(cfg[key], bool):
            raise UserError(f"model.{key}: expected true or false; got {cfg[key]!r}")
    dropout = cfg["dropout"]
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, (int, float))
        or not 0.0 <= dropout < 1.0
    ):
        raise UserError(f"model.dropout: expected a number in [0, 1); got {dropout!r}")
    cfg["dropout"] = float(dropout)
    shift = cfg["coarse_shift"]
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not 0.0 <= shift <= 4.0:
        raise UserError(
            f"model.coarse_shift: expected a shift in coarse cells in [0, 4]; got {shift!r}"
        )
    cfg["coarse_shift"] = float(shift)
    if cfg["norm"] not in DECODER_NORMS:
        raise UserError(
            f"model.norm: expected one of {', '.join(DECODER_NORMS)}; got {cfg['norm']!r}"
        )
    return cfg


def build_model(model_cfg: dict[str, Any]) -> Segmentor:
    """Build the network from the config's ``model:`` section (keys and defaults: docs/architecture.md)."""
    cfg = resolve_model_cfg(model_cfg)
    # the seed torch was last seeded with (init_model: the run's): every part after the backbone
    # draws from a stream of (that seed, its name), so parts that variants share start equal
    base = torch.initial_seed()
    backbone = build_backbone(cfg["backbone"], cfg["backbone_options"], cfg["pretrained"])
    channels = list(backbone.out_channels)
    fpn_dim, num_classes, norm = cfg["fpn_dim"], cfg["num_classes"], cfg["norm"]
    with seeded_init(base):
        decoder = FPNDecoder(
            channels,
            fpn_dim,
            align=cfg["align"],
            align_options=cfg["align_options"],
            context=cfg["context"],
            context_options=cfg["context_options"],
            norm=norm,
            coarse_shift=cfg["coarse_shift"],
        )
        with init_stream("head"):
            head = SegHead(fpn_dim, num_classes, cfg["dropout"])
        with init_stream("aux_head"):
            aux_head = (
                FCNHead(channels[2], num_classes, fpn_dim, cfg["dropout"], norm)
                if cfg["aux_head"]
                else None
            )
        with init_stream("embed_head"):
            embed_head = EmbedHead(fpn_dim, cfg["embed_dim"]) if cfg["embed_dim"] > 0 else None
    model = Segmentor(backbone, decoder, head, aux_head, embed_head, cfg["align_corners"])
    model.cfg = cfg
    return model
