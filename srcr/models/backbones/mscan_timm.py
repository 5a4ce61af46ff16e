"""MSCAN in timm's model registry: importing this module registers ``mscan_t``, ``mscan_s``,
``mscan_b`` and ``mscan_l``, after which ``timm.create_model("mscan_s", features_only=True)``
returns the four stage maps (strides 4, 8, 16, 32).

Kept apart from :mod:`srcr.models.backbones.mscan` because ``import timm`` costs seconds (it pulls
in torchvision): srcr builds its MSCAN backbones natively (:func:`~.mscan.mscan_features`) and
imports this module only when a backbone goes through timm.
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, register_model

from ...errors import UserError
from .mscan import _TIMM_CFG_DEFAULTS, MSCAN, MSCAN_ARCHS

__all__ = ["mscan_t", "mscan_s", "mscan_b", "mscan_l"]


def _cfg(**kwargs: Any) -> dict[str, Any]:
    # no url / hf hub id: pretrained weights are local files only (load_mscan_checkpoint);
    # num_classes and in_chans must match what mscan_features assumes, or the weights for a seed differ
    return {
        "url": "",
        "num_classes": _TIMM_CFG_DEFAULTS["num_classes"],
        "input_size": (_TIMM_CFG_DEFAULTS["in_chans"], 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "stages.0.downsample.0",
        "classifier": "head",
        "paper_ids": "arXiv:2209.08575",
        "paper_name": "SegNeXt",
        **kwargs,
    }


# must exist before the @register_model functions: timm reads it at registration time
default_cfgs = {name: _cfg() for name in MSCAN_ARCHS}


def _create_mscan(variant: str, pretrained: bool = False, **kwargs: Any) -> MSCAN:
    if pretrained:
        raise UserError(
            f"timm.create_model({variant!r}, pretrained=True): no MSCAN weights can be downloaded; "
            "pass a local SegNeXt checkpoint file (model.pretrained / load_mscan_checkpoint) instead"
        )
    model_args = {**MSCAN_ARCHS[variant], **kwargs}
    return build_model_with_cfg(
        MSCAN,
        variant,
        pretrained=False,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **model_args,
    )


@register_model
def mscan_t(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    """MSCAN-T (SegNeXt-T backbone): dims 32/64/160/256, depths 3/3/5/2."""
    return _create_mscan("mscan_t", pretrained, **kwargs)


@register_model
def mscan_s(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    """MSCAN-S (SegNeXt-S backbone): dims 64/128/320/512, depths 2/2/4/2."""
    return _create_mscan("mscan_s", pretrained, **kwargs)


@register_model
def mscan_b(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    """MSCAN-B (SegNeXt-B backbone): dims 64/128/320/512, depths 3/3/12/3."""
    return _create_mscan("mscan_b", pretrained, **kwargs)


@register_model
def mscan_l(pretrained: bool = False, **kwargs: Any) -> MSCAN:
    """MSCAN-L (SegNeXt-L backbone): dims 64/128/320/512, depths 3/5/27/3, drop path 0.3."""
    return _create_mscan("mscan_l", pretrained, **kwargs)
