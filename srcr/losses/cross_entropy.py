"""Pixel-wise cross-entropy with an ignore label, and online hard example mining (OHEM).

OHEM follows mmsegmentation's ``OHEMPixelSampler`` (itself after Wu et al., "High-performance
Semantic Segmentation Using Very Deep Fully Convolutional Networks", and Shrivastava et al.,
CVPR 2016): a valid pixel is kept when the predicted probability of its true class is below
``thresh``; if that keeps fewer than ``min_kept`` pixels per image, the ``min_kept * B`` pixels with
the lowest true-class probability are kept instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.layers import resize

IGNORE_INDEX = 255


def _to_label_size(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # Logits at another size than the labels are resized to them (bilinear, align_corners=True:
    # the decoder's convention), never the labels to the logits.
    return resize(logits, labels.shape[-2:], mode="bilinear", align_corners=True)


def _per_pixel(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    # (B, H, W) cross-entropy at label resolution; 0 at ignored pixels
    logits = _to_label_size(logits, labels)
    if logits.device.type == "cpu" and logits.requires_grad and torch.is_grad_enabled():
        return _PixelCrossEntropy.apply(logits, labels, ignore_index)
    return F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")


class _PixelCrossEntropy(torch.autograd.Function):
    """``F.cross_entropy(reduction="none", ignore_index=...)`` with a one-pass CPU backward.

    torch's backward zero-fills a (B, K, H, W) gradient, scatters -g into it, then runs
    log_softmax's backward (g - exp(lsm) * sum_k g) over the full map: 3 ms for the default 4x10x128x128
    logits on one thread. Here exp(lsm) * g plus a scatter of -g at the true class gives the same
    values (the sum over classes holds the single term -g; both add p*g and -g).
    """

    @staticmethod
    def forward(ctx, logits, labels, ignore_index: int):
        lsm = logits.log_softmax(dim=1)
        invalid = (labels == ignore_index).unsqueeze(1)
        target = labels.unsqueeze(1).masked_fill(invalid, 0)
        ctx.save_for_backward(lsm, target, invalid)
        return (-lsm.gather(1, target)).masked_fill(invalid, 0.0).squeeze(1)

    @staticmethod
    def backward(ctx, grad):
        lsm, target, invalid = ctx.saved_tensors
        g = grad.unsqueeze(1).masked_fill(invalid, 0.0)
        out = lsm.exp().mul_(g)
        return out.scatter_add_(1, target, -g), None, None


def _masked_mean(
    per_pixel: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    class_weight: torch.Tensor | None,
) -> torch.Tensor:
    # The mean over the masked pixels, weighted by their true class's weight when given (torch's
    # weighted-mean convention: divided by the sum of the weights, so scaling every weight by a
    # constant changes nothing). With an empty mask: a zero still connected to the graph, not 0/0.
    w = mask.to(per_pixel.dtype)
    if class_weight is not None:
        w = w * class_weight.to(per_pixel)[labels.masked_fill(~mask, 0)]
    return (per_pixel * w).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy over the valid (non-ignored) pixels, optionally class-weighted.

    logits: (B, K, h, w), resized to the labels' (H, W) when the sizes differ; labels: int64 (B, H, W);
    class_weight: (K,) non-negative weights or None. Equals ``F.cross_entropy(..., weight=class_weight,
    ignore_index=ignore_index)`` whenever a valid pixel (of non-zero weight) exists; with none (a
    crop that is all ``ignore_index``) it returns a zero that stays connected to the graph instead of
    torch's NaN (0/0), so one empty crop does not abort a run.
    """
    valid = labels != ignore_index
    return _masked_mean(_per_pixel(logits, labels, ignore_index), valid, labels, class_weight)


@torch.no_grad()
def ohem_mask(
    logits: torch.Tensor,
    labels: torch.Tensor,
    thresh: float,
    min_kept: int,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Boolean (B, H, W) mask of the pixels OHEM keeps (mmseg ``OHEMPixelSampler`` with ``thresh``).

    Kept: valid pixels whose softmax probability of the true class is < ``thresh``, plus, whatever
    the threshold, the ``min_kept * B`` valid pixels with the lowest such probability (all valid
    pixels when there are fewer). mmseg expresses the second rule as a raised threshold
    ``sorted_prob[min_kept * B]``; selecting by rank instead keeps exactly that many even when
    probabilities tie (e.g. saturated at 1.0) and never drops the last pixel of a small crop.
    """
    return _ohem_keep(
        _per_pixel(logits.float(), labels, ignore_index), labels != ignore_index, thresh, min_kept
    )


def _ohem_keep(
    per_pixel: torch.Tensor, valid: torch.Tensor, thresh: float, min_kept: int
) -> torch.Tensor:
    # The true-class probability is exp(-CE): selecting on the per-pixel cross-entropy the loss
    # needs anyway saves a second softmax over the full-resolution logits.
    per_pixel = per_pixel.detach()
    keep = valid & (per_pixel > -math.log(thresh)) if thresh > 0 else torch.zeros_like(valid)
    batch_kept = int(min_kept) * valid.shape[0]
    if batch_kept > 0:
        flat = per_pixel.masked_fill(~valid, float("-inf")).flatten()
        k = min(batch_kept, int(valid.sum()))
        if k > 0:
            # the k largest cross-entropies = the k hardest valid pixels (invalid ones are -inf)
            hardest = torch.topk(flat, k, sorted=False).indices
            keep_flat = keep.flatten().clone()
            keep_flat[hardest] = True
            keep = keep_flat.view_as(keep)
    return keep


def ohem_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    thresh: float,
    min_kept: int,
    ignore_index: int = IGNORE_INDEX,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy averaged over the pixels ``ohem_mask`` keeps.

    Normalised by the number of kept pixels (as HRNet/DDRNet's OhemCrossEntropy), or by their summed
    class weights; mmseg's default divides by all B*H*W pixels instead, which shrinks the loss as
    fewer pixels are kept. The selection uses the unweighted probabilities (as mmseg's sampler,
    which sees the logits, not the loss), so ``thresh`` keeps its meaning whatever the weights.
    """
    per_pixel = _per_pixel(logits, labels, ignore_index)
    keep = _ohem_keep(per_pixel, labels != ignore_index, thresh, min_kept)
    return _masked_mean(per_pixel, keep, labels, class_weight)
