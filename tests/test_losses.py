"""Losses: cross-entropy (+aux, OHEM) and the pixel contrastive loss (Wang et al., ICCV 2021)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from srcr.errors import UserError
from srcr.losses import (
    NonFiniteLoss,
    PixelContrastLoss,
    build_criterion,
    cross_entropy,
    info_nce,
    ohem_cross_entropy,
    ohem_mask,
    sample_anchors,
)

IGN = 255


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# --------------------------------------------------------------------------- cross-entropy


def test_ce_matches_torch_with_ignore_hand_case():
    logits = torch.tensor(
        [[[[2.0, 0.0], [0.5, -1.0]], [[0.0, 1.0], [0.5, 3.0]], [[-1.0, 0.0], [0.0, 0.0]]]],
        requires_grad=True,
    )  # (1, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [IGN, 2]]])
    got = cross_entropy(logits, labels)
    want = F.cross_entropy(logits, labels, ignore_index=IGN)
    torch.testing.assert_close(got, want)
    # Hand value: pixels (0,0) class 0, (0,1) class 1, (1,1) class 2; (1,0) ignored.
    lse = lambda *v: math.log(sum(math.exp(x) for x in v))  # noqa: E731
    hand = ((lse(2, 0, -1) - 2) + (lse(0, 1, 0) - 1) + (lse(-1, 3, 0) - 0)) / 3
    assert got.item() == pytest.approx(hand, rel=1e-6)
    got.backward()
    assert logits.grad[0, :, 1, 0].abs().sum() == 0  # the ignored pixel gets no gradient


def test_ce_resizes_logits_to_label_size():
    g = _gen(0)
    logits = torch.randn(2, 4, 5, 7, generator=g)
    labels = torch.randint(0, 4, (2, 17, 25), generator=g)
    labels[0, :3] = IGN
    up = F.interpolate(logits, size=(17, 25), mode="bilinear", align_corners=True)
    torch.testing.assert_close(
        cross_entropy(logits, labels), F.cross_entropy(up, labels, ignore_index=IGN)
    )


def test_ce_all_ignored_is_zero_with_grad():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 4, 4), IGN))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_class_weighted_ce_matches_torch_weighted_mean():
    g = _gen(10)
    logits = torch.randn(2, 4, 6, 9, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (2, 6, 9), generator=g)
    labels[0, :2] = IGN
    w = torch.tensor([0.5, 2.0, 0.0, 3.0])
    got = cross_entropy(logits, labels, class_weight=w)
    want = F.cross_entropy(logits, labels, weight=w, ignore_index=IGN)  # sum w_y l / sum w_y
    torch.testing.assert_close(got, want)
    # Brute force over the pixels, and no gradient at all for a zero-weight class.
    per = F.cross_entropy(logits, labels, ignore_index=IGN, reduction="none")
    wy = torch.where(labels == IGN, 0.0, w[labels.clamp(max=3)])
    torch.testing.assert_close(got, (per * wy).sum() / wy.sum())
    got.backward()
    assert logits.grad.permute(0, 2, 3, 1)[labels == 2].abs().sum() == 0
    # A constant weight for every class is the unweighted mean.
    torch.testing.assert_close(
        cross_entropy(logits, labels, class_weight=torch.full((4,), 3.0)),
        cross_entropy(logits, labels),
    )


def test_class_weighted_ohem_selects_unweighted_and_averages_weighted():
    g = _gen(11)
    logits = 2 * torch.randn(2, 3, 6, 6, generator=g)
    labels = torch.randint(0, 3, (2, 6, 6), generator=g)
    w = torch.tensor([1.0, 4.0, 0.25])
    keep = ohem_mask(logits, labels, 0.5, 3)  # the weights do not change which pixels are kept
    per = F.cross_entropy(logits, labels, reduction="none")
    want = (per * w[labels])[keep].sum() / w[labels][keep].sum()
    torch.testing.assert_close(ohem_cross_entropy(logits, labels, 0.5, 3, class_weight=w), want)
    crit = build_criterion(
        {
            "aux_weight": 0.4,
            "class_weight": [1.0, 4.0, 0.25],
            "ohem": {"enabled": True, "thresh": 0.5, "min_kept": 3},
            "contrastive": {"weight": 0.0},
        },
        3,
    )
    aux = torch.randn(2, 3, 3, 3, generator=g)
    _, terms = crit({"logits": logits, "aux": aux}, labels, 0, None)
    assert terms["ce"] == pytest.approx(want.item(), rel=1e-6)
    assert terms["aux"] == pytest.approx(
        0.4 * cross_entropy(aux, labels, class_weight=w).item(), rel=1e-6
    )


@pytest.mark.parametrize(
    "bad",
    [
        [1.0, 2.0],
        [1.0, -1.0, 1.0],
        [0, 0, 0],
        "inverse",
        [1.0, True, 1.0],
        [1.0, float("nan"), 1.0],
    ],
)
def test_build_criterion_rejects_bad_class_weight(bad):
    with pytest.raises(
        UserError, match=r"train.loss.class_weight: expected null or a list of 3 non-negative"
    ):
        build_criterion({"class_weight": bad}, 3)


def _outputs(g, b=2, k=3, h=16, w=16, aux=True, embed_dim=8):
    out = {
        "logits": torch.randn(b, k, h, w, generator=g, requires_grad=True),
        "logits_s4": torch.randn(b, k, h // 4, w // 4, generator=g, requires_grad=True),
    }
    if aux:
        out["aux"] = torch.randn(b, k, h, w, generator=g, requires_grad=True)
    if embed_dim:
        e = torch.randn(b, embed_dim, h // 4, w // 4, generator=g)
        out["embed"] = F.normalize(e, dim=1).requires_grad_(True)
    return out


def test_aux_weight_applied_and_terms_sum_to_total():
    g = _gen(1)
    out = _outputs(g)
    labels = torch.randint(0, 3, (2, 16, 16), generator=g)
    crit = build_criterion({"aux_weight": 0.4, "contrastive": {"weight": 0.0}}, 3)
    total, terms = crit(out, labels, 0, _gen(0))
    ce = F.cross_entropy(out["logits"], labels, ignore_index=IGN)
    aux = F.cross_entropy(out["aux"], labels, ignore_index=IGN)
    assert terms["ce"] == pytest.approx(ce.item(), rel=1e-6)
    assert terms["aux"] == pytest.approx(0.4 * aux.item(), rel=1e-6)
    assert terms["contrast"] == 0.0
    assert total.item() == pytest.approx(ce.item() + 0.4 * aux.item(), rel=1e-6)
    # A model without an auxiliary head: aux term 0.
    del out["aux"]
    total, terms = crit(out, labels, 0, None)
    assert terms["aux"] == 0.0 and total.item() == pytest.approx(ce.item(), rel=1e-6)


def test_non_finite_loss_names_the_term():
    g = _gen(2)
    out = _outputs(g)
    labels = torch.randint(0, 3, (2, 16, 16), generator=g)
    crit = build_criterion({}, 3)
    bad = dict(out, logits=torch.full_like(out["logits"], float("nan")))
    with pytest.raises(NonFiniteLoss, match="'ce'") as info:
        crit(bad, labels, 0, None)
    assert info.value.term == "ce" and math.isnan(info.value.value)
    assert isinstance(info.value, Exception)
    bad = dict(out, aux=out["aux"].detach().clone().fill_(float("inf")))
    with pytest.raises(NonFiniteLoss, match="'aux'") as info:
        crit(bad, labels, 0, None)
    assert info.value.term == "aux"


def test_build_criterion_rejects_bad_config():
    with pytest.raises(UserError, match="train.loss.*bogus"):
        build_criterion({"bogus": 1}, 3)
    with pytest.raises(UserError, match="train.loss.contrastive.temperature"):
        build_criterion({"contrastive": {"temperature": 0}}, 3)
    with pytest.raises(UserError, match="train.loss.ohem.thresh"):
        build_criterion({"ohem": {"enabled": True, "thresh": 1.5}}, 3)


# --------------------------------------------------------------------------- OHEM


def _true_prob(logits, labels):
    t = labels.clone()
    t[t == IGN] = 0
    return torch.softmax(logits, 1).gather(1, t.unsqueeze(1)).squeeze(1)


def test_ohem_keeps_min_kept_and_only_hard_beyond():
    g = _gen(3)
    logits = 3 * torch.randn(2, 4, 8, 8, generator=g)
    labels = torch.randint(0, 4, (2, 8, 8), generator=g)
    labels[1, :2] = IGN
    valid = labels != IGN
    prob = _true_prob(logits, labels)
    for thresh, min_kept in [(0.7, 5), (0.0, 5), (0.3, 0), (1.0, 3), (0.5, 1000)]:
        keep = ohem_mask(logits, labels, thresh, min_kept)
        assert not (keep & ~valid).any()  # ignored pixels never kept
        n_min = min(min_kept * 2, int(valid.sum()))
        assert int(keep.sum()) >= n_min
        lowest = torch.zeros_like(valid)
        if n_min:
            order = prob.masked_fill(~valid, float("inf")).flatten().argsort()[:n_min]
            lowest.view(-1)[order] = True
        assert torch.equal(keep, valid & ((prob < thresh) | lowest))
    # thresh 0: exactly min_kept * B kept, the hardest ones.
    assert int(ohem_mask(logits, labels, 0.0, 5).sum()) == 10


def test_ohem_cross_entropy_is_mean_over_kept():
    g = _gen(4)
    logits = torch.randn(2, 3, 6, 6, generator=g)
    labels = torch.randint(0, 3, (2, 6, 6), generator=g)
    keep = ohem_mask(logits, labels, 0.4, 2)
    per = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(ohem_cross_entropy(logits, labels, 0.4, 2), per[keep].mean())
    crit = build_criterion(
        {
            "aux_weight": 0.0,
            "ohem": {"enabled": True, "thresh": 0.4, "min_kept": 2},
            "contrastive": {"weight": 0.0},
        },
        3,
    )
    total, terms = crit({"logits": logits}, labels, 0, None)
    assert terms["ce"] == pytest.approx(per[keep].mean().item(), rel=1e-6)


# --------------------------------------------------------------------------- anchor sampling


def _brute_split(n_hard, n_easy, n_view):
    if 2 * n_hard >= n_view and 2 * n_easy >= n_view:
        return n_view // 2, n_view - n_view // 2
    if 2 * n_hard >= n_view:
        return n_view - n_easy, n_easy
    return n_hard, n_view - n_hard


def _check_sampling(labels, preds, max_samples, max_views, seed):
    """Check sample_anchors against a brute-force listing of (image, class) pairs and counts."""
    b, p = labels.shape
    idx, cls = sample_anchors(labels, preds, max_samples, max_views, generator=_gen(seed))
    pairs = []
    for i in range(b):
        for c in sorted(set(labels[i].tolist()) - {IGN}):
            if int((labels[i] == c).sum()) > max_views:
                pairs.append((i, c))
    if not pairs or max_samples // len(pairs) == 0:
        assert idx.numel() == 0 and cls.numel() == 0
        return idx, cls
    n_view = min(max_samples // len(pairs), max_views)
    assert idx.shape == (len(pairs), n_view)
    assert cls.tolist() == [c for _, c in pairs]
    flat_l, flat_p = labels.flatten(), preds.flatten()
    for row, (i, c) in enumerate(pairs):
        r = idx[row]
        assert len(set(r.tolist())) == n_view  # no pixel drawn twice
        assert torch.all(r // p == i)  # from its own image
        assert torch.all(flat_l[r] == c)  # all labelled c (so never 255)
        hard = (flat_l == c) & (flat_p != c)
        easy = (flat_l == c) & (flat_p == c)
        nh = int(hard[i * p : (i + 1) * p].sum())
        ne = int(easy[i * p : (i + 1) * p].sum())
        kh, ke = _brute_split(nh, ne, n_view)
        is_hard = flat_p[r] != c
        # hard samples first, then easy ones, in the split's counts
        assert is_hard.tolist() == [True] * kh + [False] * ke
    return idx, cls


def test_sampling_hard_easy_split_and_fill():
    p = 64
    labels = torch.full((2, p), IGN)
    preds = torch.zeros((2, p), dtype=torch.long)
    # image 0: class 0 (20 px: 8 hard, 12 easy), class 1 (12 px: 1 hard -> fill from easy),
    # class 2 (5 px: too few), the rest ignored (predicted as class 1, i.e. "easy" for nothing).
    labels[0, :20] = 0
    preds[0, :8] = 3
    labels[0, 20:32] = 1
    preds[0, 20:32] = 1
    preds[0, 20] = 0
    labels[0, 32:37] = 2
    preds[0, 37:] = 1
    # image 1: class 0 (30 px, all wrong: 0 easy -> all hard), class 3 (9 px: 5 hard, 4 easy)
    labels[1, :30] = 0
    preds[1, :30] = 2
    labels[1, 30:39] = 3
    preds[1, 30:35] = 1
    preds[1, 35:39] = 3
    idx, cls = _check_sampling(labels, preds, max_samples=1024, max_views=6, seed=0)
    assert cls.tolist() == [0, 1, 0, 3]
    counts = [int((preds.flatten()[r] != c).sum()) for r, c in zip(idx, cls.tolist())]
    assert counts == [3, 1, 6, 3]  # balanced, hard short, easy short, balanced
    # max_samples binding: 4 anchors -> n_view = 10 // 4 = 2 (odd splits tested below)
    idx, _ = _check_sampling(labels, preds, max_samples=10, max_views=6, seed=0)
    assert idx.shape == (4, 2)
    idx, _ = _check_sampling(labels, preds, max_samples=20, max_views=6, seed=0)
    assert idx.shape == (4, 5)  # odd n_view: 2 hard + 3 easy when both suffice


def test_sampling_random_invariants_and_ignore_never_drawn():
    for seed in range(6):
        g = _gen(100 + seed)
        labels = torch.randint(0, 4, (3, 120), generator=g)
        labels[torch.rand(3, 120, generator=g) < 0.3] = IGN
        preds = torch.where(
            torch.rand(3, 120, generator=g) < 0.6,
            labels.clamp(max=3),
            torch.randint(0, 4, (3, 120), generator=g),
        )
        idx, _ = _check_sampling(labels, preds, max_samples=64, max_views=12, seed=seed)
        assert not (labels.flatten()[idx.flatten()] == IGN).any()


def test_sampling_deterministic_per_generator():
    g = _gen(7)
    labels = torch.randint(0, 3, (2, 200), generator=g)
    preds = torch.randint(0, 3, (2, 200), generator=g)
    a, _ = sample_anchors(labels, preds, 1024, 20, generator=_gen(5))
    b, _ = sample_anchors(labels, preds, 1024, 20, generator=_gen(5))
    c, _ = sample_anchors(labels, preds, 1024, 20, generator=_gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_no_qualifying_class():
    labels = torch.full((2, 50), IGN)
    labels[0, :10] = 1  # only 10 px, max_views 20
    idx, cls = sample_anchors(labels, labels.clone(), 1024, 20, generator=_gen(0))
    assert idx.numel() == 0 and cls.numel() == 0
    idx, cls = sample_anchors(
        torch.full((1, 30), IGN), torch.zeros(1, 30, dtype=torch.long), 1024, 5
    )
    assert idx.numel() == 0


# --------------------------------------------------------------------------- InfoNCE


def _reference_info_nce(feats, classes, t, bt):
    """ContrastiveSeg's _contrastive written with plain loops (float64)."""
    a, v, d = feats.shape
    f = feats.detach().double().reshape(a * v, d)
    lab = [int(c) for c in classes for _ in range(v)]
    n = a * v
    per_anchor = []
    for i in range(n):
        neg = sum(math.exp(float(f[i] @ f[k]) / t) for k in range(n) if lab[k] != lab[i])
        logs = []
        for j in range(n):
            if j == i or lab[j] != lab[i]:
                continue
            s = float(f[i] @ f[j]) / t
            logs.append(s - math.log(math.exp(s) + neg))
        if logs:
            per_anchor.append(-(t / bt) * sum(logs) / len(logs))
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


def test_info_nce_matches_loop_reference():
    g = _gen(8)
    losses = []
    for a, v, classes in [(3, 4, [0, 1, 2]), (4, 3, [0, 1, 0, 2]), (2, 5, [1, 1])]:
        feats = F.normalize(torch.randn(a, v, 6, generator=g), dim=-1)
        got = info_nce(feats, torch.tensor(classes), 0.1, 0.07)
        assert got.item() == pytest.approx(
            _reference_info_nce(feats, classes, 0.1, 0.07), rel=1e-5, abs=1e-5
        )
        losses.append(got.item())
    # Without negatives every log-prob is log(1): zero loss.
    assert losses[2] == pytest.approx(0.0, abs=1e-7)
    # A perfectly separated embedding beats a random one.
    e = torch.eye(3).repeat_interleave(4, 0).view(3, 4, 3)
    assert info_nce(e, torch.tensor([0, 1, 2])).item() < losses[0]


def test_info_nce_single_view_distinct_classes_is_zero_with_grad():
    g = _gen(10)
    feats = F.normalize(torch.randn(3, 1, 4, generator=g), dim=-1).requires_grad_(True)
    loss = info_nce(feats, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert feats.grad is not None
    # one view but a class repeated across images: only those anchors count
    feats = F.normalize(torch.randn(3, 1, 4, generator=g), dim=-1)
    got = info_nce(feats, torch.tensor([0, 1, 0]))
    # float32 log-probs near 0 cancel to ~1e-6 absolute: compare with an absolute tolerance too
    assert got.item() == pytest.approx(
        _reference_info_nce(feats, [0, 1, 0], 0.1, 0.07), rel=1e-5, abs=1e-5
    )
    assert got.item() > 0


# --------------------------------------------------------------------------- full contrastive loss


def test_pixel_contrast_loss_equals_reference_with_same_anchors():
    g = _gen(9)
    b, d, h, w = 2, 8, 8, 8
    embed = F.normalize(torch.randn(b, d, h, w, generator=g), dim=1).requires_grad_(True)
    labels = torch.randint(0, 3, (b, 4 * h, 4 * w), generator=g)
    labels[:, :4] = IGN
    logits = torch.randn(b, 3, h, w, generator=g)
    loss_fn = PixelContrastLoss(max_samples=60, max_views=10)
    loss = loss_fn(embed, labels, logits, _gen(11))
    # Same steps by hand: nearest labels (legacy floor rule), argmax, the same generator seed.
    small = labels[:, ::4, ::4]
    idx, cls = sample_anchors(
        small.reshape(b, -1), logits.argmax(1).reshape(b, -1), 60, 10, generator=_gen(11)
    )
    assert idx.shape[0] > 0
    feats = torch.stack(
        [
            torch.stack(
                [embed[int(k) // (h * w), :, (int(k) % (h * w)) // w, int(k) % w] for k in row]
            )
            for row in idx
        ]
    )
    want = _reference_info_nce(feats, cls.tolist(), 0.1, 0.07)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    loss.backward()
    assert embed.grad.abs().sum() > 0


def test_criterion_contrast_warmup_determinism_and_no_class():
    g = _gen(12)
    out = _outputs(g, h=32, w=32)
    labels = torch.randint(0, 3, (2, 32, 32), generator=g)
    cfg = {"contrastive": {"weight": 0.1, "warmup": 10, "max_views": 5}}
    crit = build_criterion(cfg, 3)
    # warm-up: contrast is 0, the embedding still gets a (zero) gradient
    total, terms = crit(out, labels, 9, _gen(0))
    assert terms["contrast"] == 0.0
    total.backward()
    assert out["embed"].grad is not None and torch.all(out["embed"].grad == 0)
    # after warm-up: weighted contrast, deterministic for a seed
    _, t1 = crit(out, labels, 10, _gen(0))
    _, t2 = crit(out, labels, 10, _gen(0))
    _, t3 = crit(out, labels, 10, _gen(1))
    assert (
        t1["contrast"] > 0 and t1["contrast"] == t2["contrast"] and t1["contrast"] != t3["contrast"]
    )
    raw = PixelContrastLoss(max_views=5)(out["embed"], labels, out["logits_s4"], _gen(0))
    assert t1["contrast"] == pytest.approx(0.1 * raw.item(), rel=1e-6)
    # no qualifying class (everything ignored but a few pixels): zero, connected, no crash
    sparse = torch.full_like(labels, IGN)
    sparse[:, :2, :2] = 1
    out2 = _outputs(_gen(13), h=32, w=32)
    total, terms = crit(out2, sparse, 100, _gen(0))
    assert terms["contrast"] == 0.0
    total.backward()
    assert out2["embed"].grad is not None and torch.all(out2["embed"].grad == 0)
