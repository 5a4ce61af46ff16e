"""Pixel-wise contrastive loss with segmentation-aware hard anchor sampling.

Wang et al., "Exploring Cross-Image Pixel Contrast for Semantic Segmentation", ICCV 2021; this
follows the official ContrastiveSeg code's ``PixelContrastLoss`` without the memory bank:

1. labels are resized (nearest) to the embedding's grid; predictions are the argmax of the
   stride-4 logits at that grid;
2. ``sample_anchors``: per image and class (not the ignore label) with more than ``max_views``
   labelled pixels, ``n_view = min(max_samples // number_of_such_classes, max_views)`` pixels, half
   hard (label c, predicted not c) and half easy (label c, predicted c), filled from the other side
   when one is short;
3. ``info_nce``: supervised InfoNCE over all sampled pixels in which every positive pair is
   contrasted with the negatives only.

Sampling is vectorised (one random permutation and one stable sort for the whole batch, no Python
loop over images or classes) and draws only from the ``torch.Generator`` it is given.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.layers import resize

IGNORE_INDEX = 255


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # A generator lives on one device; draw there (deterministic for that device) and move.
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


def sample_anchors(
    labels: torch.Tensor,
    preds: torch.Tensor,
    max_samples: int = 1024,
    max_views: int = 100,
    ignore_index: int = IGNORE_INDEX,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Segmentation-aware hard anchor sampling (ContrastiveSeg ``_hard_anchor_sampling``).

    labels, preds: int64 (B, P) on the embedding grid (P = h*w). Returns ``(indices, classes)``:
    ``indices`` int64 (A, n_view) into the flattened (B*P) pixels -- row a holds first the hard then
    the easy samples of one (image, class) pair, rows ordered by image then class -- and ``classes``
    int64 (A,). With no qualifying class (or ``n_view`` = 0) both are empty (A = 0).

    Split (the official rule): with n_hard, n_easy the counts and n = n_view, keep
    (n // 2, n - n // 2) when both are >= n / 2, else all of the short side and the rest from the
    other (always possible: n_hard + n_easy > max_views >= n).
    """
    if labels.shape != preds.shape or labels.dim() != 2:
        raise ValueError(
            f"labels and preds must both be (B, P); got {tuple(labels.shape)} and "
            f"{tuple(preds.shape)}"
        )
    device = labels.device
    batch, pixels = labels.shape
    empty = (
        torch.zeros((0, 0), dtype=torch.long, device=device),
        torch.zeros((0,), dtype=torch.long, device=device),
    )
    valid = (labels != ignore_index) & (labels >= 0)
    if not bool(valid.any()):
        return empty
    num_keys = int(labels[valid].max()) + 1
    lab = labels.masked_fill(~valid, 0)
    image = torch.arange(batch, device=device).unsqueeze(1)
    class_key = image * num_keys + lab  # (image, class) pair, image-major
    easy = (preds == labels).long()
    group = class_key * 2 + easy  # hard (0) sorts before easy (1)

    cand = valid.flatten().nonzero().squeeze(1)  # only labelled pixels are ever drawn
    cand_group = group.flatten()[cand]
    group_counts = torch.bincount(cand_group, minlength=2 * batch * num_keys)
    class_counts = group_counts.view(-1, 2).sum(1)
    qualifying = (class_counts > max_views).nonzero().squeeze(1)
    n_anchor = int(qualifying.numel())
    if n_anchor == 0:
        return empty
    n_view = min(int(max_samples) // n_anchor, int(max_views))
    if n_view <= 0:
        return empty

    # A random order within every group: permute, then stable-sort by group.
    perm = _randperm(cand.numel(), generator, device)
    order = torch.sort(cand_group[perm], stable=True).indices
    sorted_pixels = cand[perm[order]]
    group_start = torch.cumsum(group_counts, 0) - group_counts

    n_hard = group_counts[2 * qualifying]
    n_easy = group_counts[2 * qualifying + 1]
    hard_ok = 2 * n_hard >= n_view
    easy_ok = 2 * n_easy >= n_view
    hard_keep = torch.where(
        hard_ok & easy_ok,
        torch.full_like(n_hard, n_view // 2),
        torch.where(hard_ok, n_view - n_easy, n_hard),
    )
    slot = torch.arange(n_view, device=device).unsqueeze(0)
    hk = hard_keep.unsqueeze(1)
    position = torch.where(
        slot < hk,
        group_start[2 * qualifying].unsqueeze(1) + slot,
        group_start[2 * qualifying + 1].unsqueeze(1) + slot - hk,
    )
    indices = sorted_pixels[position]
    classes = qualifying % num_keys
    return indices, classes


def info_nce(
    feats: torch.Tensor,
    classes: torch.Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    """Supervised InfoNCE of ContrastiveSeg's ``_contrastive``.

    feats: (A, V, D) sampled embeddings (A anchor classes x V views); classes: (A,). Over the
    N = A*V samples, for anchor i and positive j (same class, j != i):
    ``log p_ij = s_ij - log(exp(s_ij) + sum_{k: class k != class i} exp(s_ik))`` with
    ``s = f_i . f_j / temperature``; the loss is ``-(temperature / base_temperature)`` times the
    mean over positives, averaged over anchors. Computed in fp32 (autocast off). Anchors without any
    positive (possible only when V = 1) are left out of the average -- the official code divides
    0 by 0 there; with none left the loss is a zero connected to ``feats``.
    """
    n_anchor, n_view, dim = feats.shape
    if n_anchor * n_view == 0:
        return feats.sum() * 0.0
    with torch.autocast(device_type=feats.device.type, enabled=False):
        f = feats.float().reshape(n_anchor * n_view, dim)
        lab = classes.to(feats.device).repeat_interleave(n_view)
        logits = f @ f.t() / temperature
        # Subtracting the (detached) row max changes nothing mathematically; it keeps exp() finite.
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()
        same = lab.unsqueeze(0) == lab.unsqueeze(1)
        eye = torch.eye(same.shape[0], dtype=torch.bool, device=same.device)
        pos = same & ~eye
        exp = torch.exp(logits)
        neg_sum = (exp * (~same)).sum(1, keepdim=True)
        log_prob = logits - torch.log(exp + neg_sum)
        n_pos = pos.sum(1)
        has_pos = n_pos > 0
        if not bool(has_pos.any()):
            return feats.sum() * 0.0
        mean_log_prob_pos = (log_prob * pos).sum(1)[has_pos] / n_pos[has_pos]
        return -(temperature / base_temperature) * mean_log_prob_pos.mean()


class PixelContrastLoss(nn.Module):
    """ContrastiveSeg's pixel contrast loss (Wang et al., ICCV 2021), memory bank off."""

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float = 0.07,
        max_samples: int = 1024,
        max_views: int = 100,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)
        self.max_samples = int(max_samples)
        self.max_views = int(max_views)
        self.ignore_index = int(ignore_index)

    def forward(
        self,
        embed: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """embed: (B, D, h, w), L2-normalised; labels: int64 (B, H, W); logits: (B, K, h', w')
        (the stride-4 logits; resized bilinearly to (h, w) if they differ) -> scalar loss."""
        batch, _, h, w = embed.shape
        with torch.no_grad():
            if tuple(labels.shape[-2:]) != (h, w):
                # Legacy 'nearest' (floor of the scaled index), as the official code.
                lab = F.interpolate(labels.unsqueeze(1).float(), size=(h, w), mode="nearest")
                lab = lab.squeeze(1).long()
            else:
                lab = labels.long()
            pred = resize(logits.detach(), (h, w), mode="bilinear", align_corners=True).argmax(1)
            indices, classes = sample_anchors(
                lab.reshape(batch, -1),
                pred.reshape(batch, -1),
                self.max_samples,
                self.max_views,
                self.ignore_index,
                generator,
            )
        if indices.numel() == 0:
            return embed.sum() * 0.0
        pixels = h * w
        # Index (B, D, h*w) directly instead of permuting the full embedding to (B*h*w, D).
        feats = embed.flatten(2)[indices // pixels, :, indices % pixels]  # (A, V, D)
        return info_nce(feats, classes, self.temperature, self.base_temperature)
