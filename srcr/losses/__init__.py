"""Training losses: cross-entropy (+ auxiliary head, optional OHEM) and the pixel contrastive loss.

``build_criterion(loss_cfg, num_classes)`` returns a ``SegCriterion``; calling it with the model's
train-mode output dict, the labels, the iteration and a ``torch.Generator`` gives
``(total, terms)``. The terms are the *weighted* contributions and sum to ``total``:

- ``ce``: cross-entropy of ``logits`` (ignore 255; logits resized to the labels' size, bilinear,
  align_corners=True), OHEM-selected when ``ohem.enabled``, weighted per true class by
  ``class_weight`` when given (also in ``aux``);
- ``aux``: ``aux_weight`` x cross-entropy of ``aux`` (0.0 when the model has no auxiliary head);
- ``contrast``: ``contrastive.weight`` x the pixel contrastive loss of Wang et al. (ICCV 2021) on
  ``embed``; 0.0 and not computed while ``iteration < contrastive.warmup``, when the weight is 0
  or when the model has no embedding head.

Outputs that a term does not use this iteration (the embedding during warm-up, an auxiliary head
weighted 0) are added to ``total`` times zero, so every parameter receives a (zero) gradient and
DDP does not need ``find_unused_parameters``. A non-finite term raises ``NonFiniteLoss``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError
from ..utils.validate import check_keys as _check_keys
from ..utils.validate import check_number as _check_number
from .contrastive import PixelContrastLoss, info_nce, sample_anchors
from .cross_entropy import IGNORE_INDEX, cross_entropy, ohem_cross_entropy, ohem_mask

__all__ = [
    "NonFiniteLoss",
    "SegCriterion",
    "build_criterion",
    "PixelContrastLoss",
    "info_nce",
    "sample_anchors",
    "cross_entropy",
    "ohem_cross_entropy",
    "ohem_mask",
    "IGNORE_INDEX",
    "LOSS_DEFAULTS",
]

LOSS_DEFAULTS: dict[str, Any] = {
    "aux_weight": 0.4,
    "class_weight": None,
    "ohem": {"enabled": False, "thresh": 0.7, "min_kept": 100000},
    "contrastive": {
        "weight": 0.1,
        "temperature": 0.1,
        "base_temperature": 0.07,
        "max_samples": 1024,
        "max_views": 100,
        "warmup": 5000,
    },
}


class NonFiniteLoss(Exception):
    """A loss term became NaN or infinite. ``term`` names it, ``value`` holds it; the training
    engine adds the iteration to the report."""

    def __init__(self, term: str, value: float):
        self.term = term
        self.value = value
        super().__init__(f"non-finite loss term {term!r}: {value}")


class SegCriterion(nn.Module):
    """Cross-entropy + auxiliary cross-entropy + pixel contrastive loss (see the module docstring)."""

    def __init__(
        self,
        num_classes: int,
        aux_weight: float = 0.4,
        ohem: dict | None = None,
        contrastive: dict | None = None,
        ignore_index: int = IGNORE_INDEX,
        class_weight: list[float] | None = None,
    ):
        super().__init__()
        ohem = {**LOSS_DEFAULTS["ohem"], **(ohem or {})}
        con = {**LOSS_DEFAULTS["contrastive"], **(contrastive or {})}
        self.num_classes = int(num_classes)
        self.aux_weight = float(aux_weight)
        self.ignore_index = int(ignore_index)
        self.ohem_enabled = bool(ohem["enabled"])
        self.ohem_thresh = float(ohem["thresh"])
        self.ohem_min_kept = int(ohem["min_kept"])
        self.contrast_weight = float(con["weight"])
        self.contrast_warmup = int(con["warmup"])
        self.contrast = PixelContrastLoss(
            con["temperature"],
            con["base_temperature"],
            con["max_samples"],
            con["max_views"],
            ignore_index,
        )
        # a buffer, so that .to(device) moves it with the module; not persistent: the config holds it
        self.register_buffer(
            "class_weight",
            None if class_weight is None else torch.tensor([float(v) for v in class_weight]),
            persistent=False,
        )

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor, ohem: bool) -> torch.Tensor:
        if ohem:
            return ohem_cross_entropy(
                logits,
                labels,
                self.ohem_thresh,
                self.ohem_min_kept,
                self.ignore_index,
                self.class_weight,
            )
        return cross_entropy(logits, labels, self.ignore_index, self.class_weight)

    def contrast_active(self, iteration: int) -> bool:
        return self.contrast_weight > 0 and iteration >= self.contrast_warmup

    def forward(
        self,
        outputs: dict[str, torch.Tensor] | torch.Tensor,
        labels: torch.Tensor,
        iteration: int = 0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if isinstance(outputs, torch.Tensor):
            outputs = {"logits": outputs}
        if "logits" not in outputs:
            raise ValueError(f"criterion: outputs lack 'logits' (keys: {sorted(outputs)})")
        labels = labels.long()
        if labels.dim() != 3 or labels.shape[0] != outputs["logits"].shape[0]:
            raise ValueError(
                f"criterion: labels must be (B, H, W) with B = "
                f"{outputs['logits'].shape[0]}; got {tuple(labels.shape)}"
            )

        # Only the main head is OHEM-sampled (mmseg configs put the sampler on decode_head only).
        terms: dict[str, torch.Tensor] = {
            "ce": self._ce(outputs["logits"], labels, self.ohem_enabled)
        }
        zero_links = []

        aux = outputs.get("aux")
        if aux is not None and self.aux_weight > 0:
            terms["aux"] = self.aux_weight * self._ce(aux, labels, False)
        else:
            terms["aux"] = terms["ce"].new_zeros(())
            if aux is not None:
                zero_links.append(aux)

        embed = outputs.get("embed")
        if embed is not None and self.contrast_active(iteration):
            coarse = outputs.get("logits_s4", outputs["logits"])
            terms["contrast"] = self.contrast_weight * self.contrast(
                embed, labels, coarse, generator
            )
        else:
            terms["contrast"] = terms["ce"].new_zeros(())
            if embed is not None:
                zero_links.append(embed)

        total = terms["ce"] + terms["aux"] + terms["contrast"]
        for t in zero_links:
            total = total + t.sum() * 0.0

        names = list(terms) + ["total"]
        values = torch.stack(
            [v.detach().float() for v in terms.values()] + [total.detach().float()]
        )
        values = values.tolist()  # one host sync for all terms
        for name, value in zip(names, values):
            if not math.isfinite(value):
                raise NonFiniteLoss(name, value)
        return total, dict(zip(names[:-1], values[:-1]))


def build_criterion(loss_cfg: dict | None, num_classes: int) -> SegCriterion:
    """The criterion of the config's ``train.loss`` section (missing keys take LOSS_DEFAULTS).

    Bad values raise ``UserError`` naming ``train.loss.<key>``.
    """
    cfg = loss_cfg or {}
    _check_keys("train.loss", cfg, LOSS_DEFAULTS)
    aux_weight = cfg.get("aux_weight", LOSS_DEFAULTS["aux_weight"])
    _check_number("train.loss.aux_weight", aux_weight, minimum=0)

    ohem = cfg.get("ohem") or {}
    _check_keys("train.loss.ohem", ohem, LOSS_DEFAULTS["ohem"])
    ohem = {**LOSS_DEFAULTS["ohem"], **ohem}
    if not isinstance(ohem["enabled"], bool):
        raise UserError(f"train.loss.ohem.enabled: expected true or false, got {ohem['enabled']!r}")
    _check_number("train.loss.ohem.thresh", ohem["thresh"], minimum=0, maximum=1)
    _check_number("train.loss.ohem.min_kept", ohem["min_kept"], minimum=0, integer=True)

    con = cfg.get("contrastive") or {}
    _check_keys("train.loss.contrastive", con, LOSS_DEFAULTS["contrastive"])
    con = {**LOSS_DEFAULTS["contrastive"], **con}
    _check_number("train.loss.contrastive.weight", con["weight"], minimum=0)
    _check_number("train.loss.contrastive.temperature", con["temperature"], positive=True)
    _check_number("train.loss.contrastive.base_temperature", con["base_temperature"], positive=True)
    _check_number(
        "train.loss.contrastive.max_samples", con["max_samples"], positive=True, integer=True
    )
    _check_number("train.loss.contrastive.max_views", con["max_views"], positive=True, integer=True)
    _check_number("train.loss.contrastive.warmup", con["warmup"], minimum=0, integer=True)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"model.num_classes: expected a positive integer, got {num_classes!r}")
    class_weight = cfg.get("class_weight")
    if class_weight is not None:
        if (
            not isinstance(class_weight, (list, tuple))
            or len(class_weight) != num_classes
            or not all(
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                and v >= 0
                for v in class_weight
            )
            or not any(v > 0 for v in class_weight)
        ):
            raise UserError(
                f"train.loss.class_weight: expected null or a list of {num_classes} "
                f"non-negative numbers (one per class, model.num_classes = {num_classes}), "
                f"not all zero; got {class_weight!r}"
            )
    return SegCriterion(num_classes, float(aux_weight), ohem, con, class_weight=class_weight)
