"""The numbers the paper's abstract reports (arXiv 2412.08671), shown in a separate "reported"
column and never mixed with measured ones. The synthetic set has none.

A reported number belongs to the run config it describes (the full model: SRM + CRM trained with
the pixel contrastive term), matched on the resolved config, so no variant name is hard-coded.
"""

from __future__ import annotations

# dataset name (metrics.json dataset.name) -> reported mIoU of the full model
REPORTED_MIOU = {"cityscapes": 84.5, "bdd100k": 66.1, "ade20k": 45.2}
# a second Cityscapes figure with the paper's lightweight network, which is not a grid variant
REPORTED_NOTES = {
    "cityscapes": "The paper also reports 82.5 mIoU at 137.9 GFLOPs with its lightweight network "
    "(not a variant of this grid). The abstract does not say whether 82.5 is single-scale "
    "or multi-scale + flip (SegNeXt-S alone reports 81.3 ss and 82.7 ms+flip): set it "
    "beside both the ss and the ms+flip mIoU.",
}
# the evaluation directories of a run, by the mode their metrics.json records: eval/ holds the
# suite's own evaluation (the config's eval section), eval_ms_flip/ an optional second one with
# eval.preset=ms_flip
EXTRA_EVAL_DIRS = {"ms+flip": "eval_ms_flip"}


def is_full_model(config: dict) -> bool:
    model = config.get("model", {})
    kernel = (model.get("align_options") or {}).get("kernel_size", 3)
    contrast = config.get("train", {}).get("loss", {}).get("contrastive", {}).get("weight", 0)
    return (
        model.get("align") == "srm"
        and model.get("context") == "crm"
        and kernel == 3
        and contrast > 0
    )


def reported_miou(dataset: str, config: dict) -> float | None:
    """The paper's mIoU for this dataset and run config, or None."""
    if dataset in REPORTED_MIOU and is_full_model(config):
        return REPORTED_MIOU[dataset]
    return None


def eval_mode(inference: dict) -> str:
    """What produced a measured number, from metrics.json's ``inference``: ``ss`` (one scale, no
    flip), ``ms+flip`` (mmseg's standard ratios 0.5-1.75 and flip), else the scales (and flip)."""
    from ..engine.inference import EVAL_PRESETS

    scales = [float(x) for x in inference.get("scales", [1.0])]
    flip = bool(inference.get("flip", False))
    for name, preset in (("ss", EVAL_PRESETS["ss"]), ("ms+flip", EVAL_PRESETS["ms_flip"])):
        if scales == preset["scales"] and flip == preset["flip"]:
            return name
    return f"scales {','.join(f'{x:g}' for x in scales)}" + (" + flip" if flip else "")
