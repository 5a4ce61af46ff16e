"""Test-time inference: whole image or sliding window (mmsegmentation's semantics), optional
horizontal flip and multi-scale, the keep-ratio resize of ``eval.scale`` and the resize to a
multiple of ``eval.size_divisor``.

Test sizes follow mmseg 0.x (the code SegNeXt's configs ran on): ``MultiScaleFlipAug`` turns each
ratio r into the scale ``(int(S_h * r), int(S_w * r))`` of ``eval.scale`` S (the image's own size
when S is null) and ``Resize(keep_ratio=True)`` resizes the ORIGINAL image to fit it, then
``ResizeToMultiple`` resizes that result up to the next multiple of the divisor. A 375x500 image
with S = (512, 2048) and r = 1.5 is inferred at 768x1024. (mmseg 1.x's ``TestTimeAug`` instead
multiplies the keep-ratio size's scale factor, and its ``size_divisor`` pads rather than resizes.)

Multi-scale / flip follow mmseg's aug_test: the softmax probabilities of every (scale, flip) pass,
each resized to the output (label) size, are averaged; with one pass the argmax equals that of the
logits resized to the label size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def keep_ratio_size(h: int, w: int, scale: tuple[int, int] | list[int]) -> tuple[int, int]:
    """mmseg's ``Resize(scale, keep_ratio=True)``: the largest size with the image's aspect ratio whose
    long side is <= max(scale) and short side <= min(scale) (rounded half up, as mmcv's rescale_size)."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


# mmseg's standard multi-scale test ratios (the commented-out img_ratios of its dataset configs)
MMSEG_MS_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
# eval.preset -> the eval keys it sets; "ss" is the single-scale default
EVAL_PRESETS = {
    "ss": {"scales": [1.0], "flip": False},
    "ms_flip": {"scales": list(MMSEG_MS_RATIOS), "flip": True},
}


def pass_sizes(
    h: int, w: int, scale, ratio: float = 1.0, size_divisor: int | None = None
) -> list[tuple[int, int]]:
    """The sizes an (h, w) image is resized to, in turn, for one test ratio (module docstring):
    the keep-ratio size, then (with ``size_divisor``) that size rounded up to its multiples."""
    base = (h, w) if scale is None else (int(scale[0]), int(scale[1]))
    target = (max(1, int(base[0] * ratio)), max(1, int(base[1] * ratio)))
    sizes = [keep_ratio_size(h, w, target)]
    if size_divisor:
        d = int(size_divisor)
        sizes.append(tuple(-(-x // d) * d for x in sizes[0]))
    return sizes


def scaled_input(
    images: torch.Tensor, scale=None, ratio: float = 1.0, size_divisor: int | None = None
) -> torch.Tensor:
    """``images`` (original size) resized as the test pipeline does for ``ratio``."""
    x = images
    for size in pass_sizes(*images.shape[-2:], scale, ratio, size_divisor):
        x = _resize(x, size)
    return x


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    # align_corners=False: mmseg's convention for test-time image and logit resizing
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def whole_logits(model, images: torch.Tensor) -> torch.Tensor:
    if images.device.type == "cpu":
        # oneDNN's channels-last convolutions: the default model's forward at 128x256 takes 16%
        # less time on one thread (as in training, where train.channels_last sets it)
        images = images.contiguous(memory_format=torch.channels_last)
    out = model(images)
    if isinstance(out, dict):
        out = out["logits"]
    return _resize(out.float(), images.shape[-2:])


def slide_logits(model, images: torch.Tensor, num_classes: int, crop_size, stride) -> torch.Tensor:
    """mmseg ``slide_inference``: overlapping crops, the last ones flush with the image border; the
    crop logits are padded into a full-size map and divided by how many crops covered each pixel.
    An image smaller than the crop is inferred whole."""
    h_crop, w_crop = int(crop_size[0]), int(crop_size[1])
    h_stride, w_stride = int(stride[0]), int(stride[1])
    b, _, h_img, w_img = images.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = images.new_zeros((b, num_classes, h_img, w_img), dtype=torch.float32)
    count = images.new_zeros((b, 1, h_img, w_img), dtype=torch.float32)
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * h_stride, w_idx * w_stride
            y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            crop_logits = whole_logits(model, images[:, :, y1:y2, x1:x2])
            preds += F.pad(crop_logits, (x1, w_img - x2, y1, h_img - y2))
            count[:, :, y1:y2, x1:x2] += 1
    if bool((count == 0).any()):
        raise RuntimeError("sliding window left pixels uncovered (stride larger than crop?)")
    return preds / count


def infer_logits(
    model, images: torch.Tensor, num_classes: int, mode: str = "whole", crop_size=None, stride=None
) -> torch.Tensor:
    if mode == "whole":
        return whole_logits(model, images)
    if mode == "slide":
        return slide_logits(model, images, num_classes, crop_size, stride)
    raise ValueError(f"unknown inference mode {mode!r}; expected whole or slide")


@torch.no_grad()
def predict_probs(
    model,
    images: torch.Tensor,
    out_size: tuple[int, int],
    num_classes: int,
    mode: str = "whole",
    crop_size=None,
    stride=None,
    scale=None,
    flip: bool = False,
    scales=(1.0,),
    size_divisor: int | None = None,
) -> torch.Tensor:
    """Class probabilities (B, K, *out_size), averaged over scales and flips.

    ``images`` are at their original size; each ratio of ``scales`` resizes them afresh
    (:func:`pass_sizes`: ``scale`` ([H, W] or None) times the ratio, keep-ratio, then up to a
    multiple of ``size_divisor``).
    """
    acc = None
    passes = 0
    for s in scales:
        x = scaled_input(images, scale, s, size_divisor)
        for flipped in (False, True) if flip else (False,):
            xi = x.flip(-1) if flipped else x
            logits = infer_logits(model, xi, num_classes, mode, crop_size, stride)
            if flipped:
                logits = logits.flip(-1)
            probs = torch.softmax(_resize(logits, out_size), dim=1)
            acc = probs if acc is None else acc + probs
            passes += 1
    return acc / passes


def predict_label(model, image: torch.Tensor, out_size: tuple[int, int], cfg: dict) -> torch.Tensor:
    """The class map (out_size, int64, on the CPU) of one normalised image (1, 3, h, w) at its
    original size with the ``eval`` section of ``cfg`` (test sizes: module docstring): the one
    prediction of `srcr evaluate` and `srcr predict`."""
    ev = cfg["eval"]
    probs = predict_probs(
        model,
        image,
        tuple(out_size),
        int(cfg["model"]["num_classes"]),
        mode=ev["mode"],
        crop_size=ev["crop_size"],
        stride=ev["stride"],
        scale=ev["scale"],
        flip=ev["flip"],
        scales=ev["scales"],
        size_divisor=ev["size_divisor"],
    )
    # max(1).indices: the same first-maximum index as argmax(1), which is 5x slower on CPU
    return probs.max(1).indices[0].cpu()


@torch.no_grad()
def model_offsets(model, image: torch.Tensor) -> dict:
    """Each alignment step's offsets of a whole-image forward, ``{"STEP_KIND": (C, h, w) float32}``
    (srm / fam / alignfa models; empty for the others)."""
    model(image)
    return {
        f"{step}_{kind}": t[0].float().cpu().numpy()
        for step, steps in model.offsets().items()
        for kind, t in steps.items()
    }
