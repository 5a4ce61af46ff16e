"""srcr.metrics against slow, obviously-correct references (pure python loops, brute-force
distances) on small random maps, plus hand-worked cases (docs/metrics.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srcr.errors import UserError
from srcr.metrics import SegEvaluator, gscnn_tolerances, load_per_image, summarize

V = 255
NB4 = ((-1, 0), (1, 0), (0, -1), (0, 1))


# ------------------------------------------------------------------------------------------------
# references
# ------------------------------------------------------------------------------------------------


def ref_boundary(mask, void):
    """Pixels of mask with an in-image 4-neighbour outside it; those touching void dropped."""
    H, W = mask.shape
    out = np.zeros_like(mask)
    for y in range(H):
        for x in range(W):
            if not mask[y, x]:
                continue
            nbrs = [(y + dy, x + dx) for dy, dx in NB4 if 0 <= y + dy < H and 0 <= x + dx < W]
            if any(not mask[n] for n in nbrs) and not void[y, x] and not any(void[n] for n in nbrs):
                out[y, x] = True
    return out


def ref_min_d2(points_from, points_to):
    """For each pixel of points_from, squared distance to the nearest of points_to (inf if none)."""
    to = np.argwhere(points_to)
    res = {}
    for p in np.argwhere(points_from):
        res[tuple(p)] = min(((p - q) ** 2).sum() for q in to) if len(to) else math.inf
    return res


def ref_image(pred, label, C, taus, d, widths):
    """All per-image counts by definition."""
    void = label == V
    r = {k: np.zeros(C, np.int64) for k in ("tp", "gt", "pr", "np", "ng", "inter", "bg", "bp")}
    r["tpp"] = np.zeros((len(taus), C), np.int64)
    r["tpg"] = np.zeros((len(taus), C), np.int64)
    for y, x in np.argwhere(~void):
        r["gt"][label[y, x]] += 1
        r["pr"][pred[y, x]] += 1
        r["tp"][label[y, x]] += pred[y, x] == label[y, x]
    for c in range(C):
        G = label == c
        P = (pred == c) & ~void
        bG, bP = ref_boundary(G, void), ref_boundary(P, void)
        r["ng"][c], r["np"][c] = bG.sum(), bP.sum()
        dp, dg = ref_min_d2(bP, bG), ref_min_d2(bG, bP)
        for t, tau in enumerate(taus):
            r["tpp"][t, c] = sum(v <= tau * tau for v in dp.values())
            r["tpg"][t, c] = sum(v <= tau * tau for v in dg.values())
        band_g = {p for p, v in ref_min_d2(G, bG).items() if v <= d * d}
        band_p = {p for p, v in ref_min_d2(P, bP).items() if v <= d * d}
        r["inter"][c], r["bg"][c], r["bp"][c] = len(band_g & band_p), len(band_g), len(band_p)
    # trimap: class-agnostic boundary between two non-void labels
    H, W = label.shape
    tb = np.zeros((H, W), bool)
    for y, x in np.argwhere(~void):
        for dy, dx in NB4:
            yy, xx = y + dy, x + dx
            if 0 <= yy < H and 0 <= xx < W and not void[yy, xx] and label[yy, xx] != label[y, x]:
                tb[y, x] = True
    dist2 = ref_min_d2(~void, tb)
    r["btp"] = np.zeros((len(widths), C), np.int64)
    r["bgt"] = np.zeros((len(widths), C), np.int64)
    r["bpr"] = np.zeros((len(widths), C), np.int64)
    for k, w in enumerate(widths):
        for (y, x), v in dist2.items():
            if v <= w * w:
                r["bgt"][k, label[y, x]] += 1
                r["bpr"][k, pred[y, x]] += 1
                r["btp"][k, label[y, x]] += pred[y, x] == label[y, x]
    return r


def ref_summary(refs, C, taus, widths):
    """The reported figures from reference counts, written out from docs/metrics.md."""
    s = {k: sum(r[k] for r in refs) for k in refs[0]}
    nan = float("nan")

    def iou(tp, gt, pr):
        return [
            100 * tp[c] / (gt[c] + pr[c] - tp[c]) if gt[c] + pr[c] - tp[c] else nan
            for c in range(C)
        ]

    def mean(v):
        v = [x for x in v if not math.isnan(x)]
        return sum(v) / len(v) if v else nan

    out = {
        "IoU": iou(s["tp"], s["gt"], s["pr"]),
        "Acc": [100 * s["tp"][c] / s["gt"][c] if s["gt"][c] else nan for c in range(C)],
        "aAcc": 100 * s["tp"].sum() / s["gt"].sum() if s["gt"].sum() else nan,
    }
    out["mIoU"], out["mAcc"] = mean(out["IoU"]), mean(out["Acc"])
    for t, tau in enumerate(taus):
        f = []
        for c in range(C):
            if s["ng"][c] == 0:
                f.append(nan)
                continue
            P = s["tpp"][t, c] / s["np"][c] if s["np"][c] else 0.0
            R = s["tpg"][t, c] / s["ng"][c]
            f.append(100 * 2 * P * R / (P + R) if P + R else 0.0)
        out[f"BF@{tau:g}"], out[f"mBF@{tau:g}"] = f, mean(f)
    out["BIoU"] = [
        100 * s["inter"][c] / (s["bg"][c] + s["bp"][c] - s["inter"][c])
        if s["bg"][c] + s["bp"][c] - s["inter"][c]
        else nan
        for c in range(C)
    ]
    out["mBIoU"] = mean(out["BIoU"])
    for k, w in enumerate(widths):
        band = iou(s["btp"][k], s["bgt"][k], s["bpr"][k])
        inner = iou(s["tp"] - s["btp"][k], s["gt"] - s["bgt"][k], s["pr"] - s["bpr"][k])
        wrong = s["gt"].sum() - s["tp"].sum()
        out[("trimap", w)] = {
            "band_IoU": band,
            "interior_IoU": inner,
            "band_mIoU": mean(band),
            "interior_mIoU": mean(inner),
            "band_aAcc": 100 * s["btp"][k].sum() / s["bgt"][k].sum() if s["bgt"][k].sum() else nan,
            "error_share": 100 * (s["bgt"][k].sum() - s["btp"][k].sum()) / wrong if wrong else nan,
        }
    return out


def close(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)


def assert_matches_reference(ev_out, ref, taus, widths):
    for k in ("aAcc", "mIoU", "mAcc", "IoU", "Acc", "mBIoU", "BIoU"):
        assert close(ev_out[k], ref[k]), (k, ev_out[k], ref[k])
    for tau in taus:
        for k in (f"BF@{tau:g}", f"mBF@{tau:g}"):
            assert close(ev_out[k], ref[k]), (k, ev_out[k], ref[k])
    for w in widths:
        for k, v in ref[("trimap", w)].items():
            assert close(ev_out["trimap"][w][k], v), (w, k, ev_out["trimap"][w][k], v)


@st.composite
def image_pairs(draw, max_side=9):
    C = draw(st.integers(1, 5))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    void_p = draw(st.sampled_from([0.0, 0.1, 0.3]))
    blocky = draw(st.booleans())
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        if blocky:  # larger regions so that distances and bands are exercised
            lab = np.repeat(np.repeat(rng.integers(0, C, (H // 3 + 1, W // 3 + 1)), 3, 0), 3, 1)[
                :H, :W
            ]
            pred = lab.copy()
            flip = rng.random((H, W)) < 0.2
            pred[flip] = rng.integers(0, C, flip.sum())
        else:
            lab = rng.integers(0, C, (H, W))
            pred = rng.integers(0, C, (H, W))
        lab = np.where(rng.random((H, W)) < void_p, V, lab)
        pairs.append((pred.astype(np.int64), lab.astype(np.int64)))
    return C, pairs


TAUS, BW, WIDTHS = (1, 2, 3.5), 2, (1, 2, 3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_pairs())
def test_all_figures_match_brute_force(case):
    C, pairs = case
    ev = SegEvaluator(C, bf_tolerances=TAUS, biou_width=BW, trimap_widths=WIDTHS)
    for pred, lab in pairs:
        ev.update(pred, lab)
    refs = [ref_image(p, l, C, TAUS, BW, WIDTHS) for p, l in pairs]
    out = ev.compute()
    assert_matches_reference(out, ref_summary(refs, C, TAUS, WIDTHS), TAUS, WIDTHS)
    # per-image counts are the reference counts
    pi = ev.per_image
    for i, r in enumerate(refs):
        assert np.array_equal(pi["bf_np"][i], r["np"]) and np.array_equal(pi["bf_ng"][i], r["ng"])
        assert np.array_equal(pi["bf_tpp"][i], r["tpp"]) and np.array_equal(
            pi["bf_tpg"][i], r["tpg"]
        )
        assert np.array_equal(pi["band_tp"][i], r["btp"]) and np.array_equal(
            pi["band_gt"][i], r["bgt"]
        )
    # band + interior = overall, and the confusion matrix agrees with the per-class sums
    for k in range(len(WIDTHS)):
        assert (pi["band_gt"][:, k] <= pi["conf_gt"]).all() and (
            pi["band_tp"][:, k] <= pi["conf_tp"]
        ).all()
    assert np.array_equal(ev.confusion.sum(1), pi["conf_gt"].sum(0))
    assert np.array_equal(ev.confusion.sum(0), pi["conf_pred"].sum(0))
    assert np.array_equal(np.diag(ev.confusion), pi["conf_tp"].sum(0))


# ------------------------------------------------------------------------------------------------
# GSCNN protocol against a literal port of GSCNN's utils/f_boundary.py (skimage-free)
# ------------------------------------------------------------------------------------------------


def seg2bmap_ref(seg):
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def dilate_disk_ref(b, r):
    H, W = b.shape
    out = np.zeros_like(b)
    for y, x in np.argwhere(b):
        for yy in range(max(0, y - r), min(H, y + r + 1)):
            for xx in range(max(0, x - r), min(W, x + r + 1)):
                if (yy - y) ** 2 + (xx - x) ** 2 <= r * r:
                    out[yy, xx] = True
    return out


def db_eval_boundary_ref(fg, gt, ignore, bound_pix):
    fg, gt = fg.copy(), gt.copy()
    fg[ignore] = 0
    gt[ignore] = 0
    fb, gb = seg2bmap_ref(fg), seg2bmap_ref(gt)
    fd, gd = dilate_disk_ref(fb, bound_pix), dilate_disk_ref(gb, bound_pix)
    n_fg, n_gt = fb.sum(), gb.sum()
    if n_fg == 0 and n_gt > 0:
        p, r = 1, 0
    elif n_fg > 0 and n_gt == 0:
        p, r = 0, 1
    elif n_fg == 0 and n_gt == 0:
        p, r = 1, 1
    else:
        p, r = (fb & gd).sum() / n_fg, (gb & fd).sum() / n_gt
    return 0 if p + r == 0 else 2 * p * r / (p + r)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_pairs(max_side=12), st.sampled_from([(0.1, 0.25), (0.0005, 0.3, 1.0), (2.0,)]))
def test_gscnn_mode_matches_gscnn_code(case, fractions):
    C, pairs = case
    ev = SegEvaluator(C, gscnn=True, gscnn_fractions=fractions)
    Fpc = np.zeros((len(fractions), C))
    for pred, lab in pairs:
        ev.update(pred, lab)
        taus = gscnn_tolerances(lab.shape, fractions)
        for j, bp in enumerate(taus):
            assert bp == (
                fractions[j]
                if fractions[j] >= 1
                else math.ceil(fractions[j] * np.linalg.norm(lab.shape))
            )
            for c in range(C):
                Fpc[j, c] += db_eval_boundary_ref(pred == c, lab == c, lab == V, bp)
    out = ev.compute()
    assert "GSCNN" in out["gscnn_protocol"]
    for j, f in enumerate(fractions):
        val = out[out["gscnn_keys"][j]]
        assert close(val, 100 * (Fpc[j] / len(pairs)).mean()), (f, val, Fpc[j] / len(pairs))


def _random_pairs(C, n, shape, seed):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        lab = rng.integers(0, C, shape).astype(np.uint8)
        lab[rng.random(shape) < 0.1] = V
        pred = np.where(rng.random(shape) < 0.7, lab, rng.integers(0, C, shape)).astype(np.uint8)
        pred[pred == V] = 0
        pairs.append((pred, lab))
    return pairs


def test_gscnn_integer_pixel_thresholds_match_brute_force():
    # f >= 1 is a pixel radius in GSCNN's code: 2 and 3.0 are disk(2), disk(3) -- exact Euclidean
    C, fractions = 3, (2, 3.0)
    pairs = _random_pairs(C, 3, (11, 14), seed=5)
    ev = SegEvaluator(C, gscnn=True, gscnn_fractions=fractions)
    Fpc = np.zeros((len(fractions), C))
    for pred, lab in pairs:
        ev.update(pred, lab)
        assert gscnn_tolerances(lab.shape, fractions) == [2, 3]
        for j, bp in enumerate((2, 3)):
            for c in range(C):
                Fpc[j, c] += db_eval_boundary_ref(pred == c, lab == c, lab == V, bp)
    out = ev.compute()
    assert out["gscnn_keys"] == ["gscnn_F@2", "gscnn_F@3"]
    for j, key in enumerate(out["gscnn_keys"]):
        assert close(out[key], 100 * (Fpc[j] / len(pairs)).mean())
    assert not np.allclose(Fpc[0], Fpc[1])  # the two radii really differ on these maps


def test_skimage_disk_of_half_integer_radius_is_an_off_centre_box():
    # why 2.5 px cannot be reproduced: skimage's disk(r) is (X**2 + Y**2 <= r**2) on
    # X, Y = meshgrid(arange(-r, r + 1)); for r = 2.5 the lattice is -2.5..2.5 (6 values, no 0)
    r = 2.5
    L = np.arange(-r, r + 1)
    X, Y = np.meshgrid(L, L)
    fp = X**2 + Y**2 <= r**2
    assert fp.shape == (6, 6)
    expected = np.zeros((6, 6), bool)
    expected[1:5, 1:5] = True  # a 4x4 box: offsets -2..1 or -1..2 around the origin pixel
    assert np.array_equal(fp, expected)
    # whereas the pixels within Euclidean distance 2.5 are 21, symmetric about the centre
    assert sum(dy * dy + dx * dx <= r * r for dy in range(-3, 4) for dx in range(-3, 4)) == 21


@pytest.mark.parametrize("fractions", [(2.5,), (0.005, 1.5), (3, 7.25)])
def test_gscnn_non_integer_pixel_threshold_is_rejected(fractions):
    bad = next(f for f in fractions if f >= 1 and not float(f).is_integer())
    with pytest.raises(UserError) as e:
        SegEvaluator(4, gscnn=True, gscnn_fractions=fractions)
    assert "gscnn_fractions" in str(e.value) and repr(bad) in str(e.value)
    with pytest.raises(UserError):
        gscnn_tolerances((64, 64), fractions)
    # fractions below 1 are ceil-ed to whole pixels and stay accepted
    assert gscnn_tolerances((30, 40), (0.3, 0.0005)) == [15, 1]


# ------------------------------------------------------------------------------------------------
# hand-worked cases
# ------------------------------------------------------------------------------------------------


def test_one_pixel_object_and_empty_class():
    lab = np.zeros((5, 5), np.uint8)
    lab[2, 2] = 1
    ev = SegEvaluator(3, bf_tolerances=(1, 3), biou_width=1, trimap_widths=(1,))
    ev.update(lab.copy(), lab)
    out = ev.compute()
    assert out["mIoU"] == 100 and out["aAcc"] == 100
    assert (
        math.isnan(out["IoU"][2])
        and out["left_out"]["mIoU"] == [2]
        and out["left_out"]["mBF"] == [2]
    )
    pi = ev.per_image
    assert pi["bf_ng"][0].tolist() == [4, 1, 0]  # the 4 pixels around the object, the object itself
    assert out["BF@1"][:2] == [100, 100] and math.isnan(out["BF@1"][2])
    # shifted diagonally: sqrt(2) away -> misses at tau = 1, matches at tau = 3
    pred = np.zeros((5, 5), np.uint8)
    pred[3, 3] = 1
    ev = SegEvaluator(2, bf_tolerances=(1, 3), biou_width=1, trimap_widths=(1,))
    ev.update(pred, lab)
    out = ev.compute()
    assert out["BF@1"][1] == 0 and out["BF@3"][1] == 100
    assert out["IoU"] == [100 * 23 / 25, 0.0]
    # the trimap band of width 1 is the object and its 4-neighbours and theirs ... (dist <= 1)
    assert ev.per_image["band_gt"][0, 0].tolist() == [4 + 8, 1]


def test_objects_touching_the_border_and_void():
    lab = np.zeros((4, 6), np.int64)
    lab[:, 3:] = 1
    ev = SegEvaluator(2, trimap_widths=(1,))
    ev.update(lab, lab)
    pi = ev.per_image
    assert pi["bf_ng"][0].tolist() == [
        4,
        4,
    ]  # only the interface columns; the image border is no boundary
    assert ev.compute()["mBF@3"] == 100
    # a void column between the classes: every edge is against void, nothing is scored
    lab[:, 3] = V
    pred = np.zeros_like(lab)  # predictions under void do not matter
    pred[:, 4:] = 1
    ev = SegEvaluator(2, trimap_widths=(1,))
    ev.update(pred, lab)
    out = ev.compute()
    assert out["left_out"]["mBF"] == [0, 1] and math.isnan(out["mBF@3"])
    assert (
        out["mIoU"] == 100 and ev.per_image["band_gt"].sum() == 0
    )  # no label boundary between non-void
    assert ev.confusion.sum() == 4 * 5


def test_all_ignore_image_changes_nothing():
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 3, (8, 9))
    pred = rng.integers(0, 3, (8, 9))
    a, b = SegEvaluator(3), SegEvaluator(3)
    a.update(pred, lab)
    b.update(pred, lab)
    b.update(rng.integers(0, 3, (8, 9)), np.full((8, 9), V))
    ra, rb = a.compute(), b.compute()
    for k in ("mIoU", "aAcc", "mBF@3", "mBIoU"):
        assert ra[k] == rb[k]
    alone = SegEvaluator(3)
    alone.update(np.zeros((4, 4), np.int64), np.full((4, 4), V))
    out = alone.compute()
    assert (
        math.isnan(out["mIoU"]) and math.isnan(out["aAcc"]) and out["left_out"]["mIoU"] == [0, 1, 2]
    )


def test_band_plus_interior_is_overall():
    rng = np.random.default_rng(2)
    lab = np.repeat(np.repeat(rng.integers(0, 4, (12, 20)), 8, 0), 8, 1)
    pred = np.where(rng.random(lab.shape) < 0.1, rng.integers(0, 4, lab.shape), lab)
    lab[rng.random(lab.shape) < 0.05] = V
    ev = SegEvaluator(4)
    ev.update(pred, lab)
    out = ev.compute()
    pi = ev.per_image
    for k, w in enumerate(ev.config["trimap_widths"]):
        assert (pi["band_gt"][0, k] <= pi["conf_gt"][0]).all()
        t = out["trimap"][w]
        # accuracy of the whole = pixel-weighted accuracy of band and interior
        nb, n = pi["band_gt"][0, k].sum(), pi["conf_gt"][0].sum()
        whole = (nb * t["band_aAcc"] + ((n - nb) * t["interior_aAcc"] if n > nb else 0)) / n
        assert abs(whole - out["aAcc"]) < 1e-9
    shares = [out["trimap"][w]["error_share"] for w in ev.config["trimap_widths"]]
    assert shares == sorted(shares)


def test_tiled_distance_is_exact_on_a_large_map():
    """The trimap transform runs on tiles; compare with scipy's exact transform across tile seams."""
    from scipy.ndimage import distance_transform_edt

    from srcr.metrics.maps import to_codes, trimap_boundary
    from srcr.metrics.trimap import width_index

    rng = np.random.default_rng(3)
    lab = np.repeat(np.repeat(rng.integers(0, 3, (12, 24)), 50, 0), 50, 1)[:590, :1130]
    lab[rng.random(lab.shape) < 0.001] = 1
    codes = to_codes(lab, 3, 255, V)
    tb = trimap_boundary(codes)
    widths = (1, 2, 4, 8, 16, 32)
    d2 = np.rint(distance_transform_edt(~tb) ** 2)
    expect = sum((d2 > w * w).astype(np.uint8) for w in widths)
    assert np.array_equal(width_index(tb, widths), expect)
    assert np.array_equal(width_index(np.zeros((5, 7), bool), widths), np.full((5, 7), 6))


def test_class_neighbourhood_many_classes():
    """Dense many-class maps, where three or more classes meet within the radius (the exact
    fallback of the min/max filter)."""
    from srcr.metrics.maps import single_class_reference

    rng = np.random.default_rng(4)
    ref = np.where(rng.random((40, 50)) < 0.3, rng.integers(0, 20, (40, 50)), V).astype(np.uint8)
    cls = rng.integers(0, 20, (40, 50)).astype(np.uint8)
    nb = single_class_reference(ref)
    for r in (1, 2.5, 4):
        dense = nb.dense(cls, np.ones(cls.shape, bool), r)
        idx = np.arange(cls.size)
        sparse = nb.query(idx, cls.ravel(), r)
        assert np.array_equal(dense.ravel(), sparse)
        expect = np.zeros(cls.shape, bool)
        for y, x in np.ndindex(cls.shape):
            pts = np.argwhere(ref == cls[y, x])
            expect[y, x] = bool(len(pts)) and (((pts - (y, x)) ** 2).sum(1) <= r * r).any()
        assert np.array_equal(dense, expect)


# ------------------------------------------------------------------------------------------------
# API: inputs, errors, state, files, bootstrap
# ------------------------------------------------------------------------------------------------


def test_torch_batches_and_names():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    lab = rng.integers(0, 3, (2, 6, 7))
    pred = rng.integers(0, 3, (2, 6, 7))
    a, b = SegEvaluator(3), SegEvaluator(3)
    a.update(torch.from_numpy(pred), torch.from_numpy(lab).to(torch.uint8), names=["x", "y"])
    for p, l in zip(pred, lab):
        b.update(p, l)
    assert a.names == ["x", "y"] and len(a) == 2
    assert a.compute()["mIoU"] == b.compute()["mIoU"]


def test_bad_inputs_raise_user_errors():
    ev = SegEvaluator(3)
    with pytest.raises(UserError, match="values \\[7\\]"):
        ev.update(np.zeros((3, 3), np.int64), np.full((3, 3), 7))
    with pytest.raises(UserError, match="pred contains values \\[-1\\]"):
        ev.update(np.full((3, 3), -1), np.zeros((3, 3), np.int64))
    with pytest.raises(UserError, match="differs from label shape"):
        ev.update(np.zeros((3, 4), np.int64), np.zeros((3, 3), np.int64))
    with pytest.raises(UserError, match="integer class indices"):
        ev.update(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.int64))
    with pytest.raises(UserError, match="ignore_index"):
        SegEvaluator(3, ignore_index=1)
    with pytest.raises(UserError, match="num_classes"):
        SegEvaluator(300)
    with pytest.raises(UserError, match="no images"):
        ev.compute()
    # a prediction off the classes is fine where the label is ignored
    ev.update(np.array([[255, 0]]), np.array([[255, 0]]))
    assert ev.compute()["aAcc"] == 100


def test_merge_state_save_and_bootstrap(tmp_path):
    rng = np.random.default_rng(6)
    imgs = [
        (
            rng.integers(0, 4, (10, 12)),
            np.where(rng.random((10, 12)) < 0.1, V, rng.integers(0, 4, (10, 12))),
        )
        for _ in range(5)
    ]
    whole = SegEvaluator(4, gscnn=True, class_names=list("abcd"))
    parts = [SegEvaluator(4, gscnn=True, class_names=list("abcd")) for _ in range(2)]
    for i, (p, l) in enumerate(imgs):
        whole.update(p, l, names=f"im{i}")
        parts[i % 2].update(p, l, names=f"im{i}")
    merged = SegEvaluator(4, gscnn=True, class_names=list("abcd"))
    merged.merge(parts[0]).merge(parts[1].state_dict())
    ref = whole.compute()
    out = merged.compute()
    assert ref["gscnn_keys"][0] == "gscnn_F@0.0005diag"  # 10 x 12: every fraction gives 1 px
    for k in ("mIoU", "mBF@3", "mBIoU", "gscnn_F@0.005diag", "aAcc"):
        assert close(out[k], ref[k]), k
    assert np.array_equal(merged.confusion, whole.confusion)
    with pytest.raises(UserError, match="different settings"):
        SegEvaluator(4).merge(parts[0])

    path = tmp_path / "sub" / "counts.npz"
    whole.save_per_image(path)
    state = load_per_image(path)
    assert state["names"] == [f"im{i}" for i in range(5)] and state["config"][
        "class_names"
    ] == list("abcd")
    assert close(summarize(state["counts"], state["config"])["mBF@1"], ref["mBF@1"])
    again = SegEvaluator.from_file(path).compute()
    assert close(again["mBF@5"], ref["mBF@5"]) and again["left_out"] == ref["left_out"]
    assert not list(path.parent.glob(".*tmp"))  # written atomically, nothing left behind

    # a bootstrap resample through summarize() = evaluating the resampled images
    idx = [0, 0, 3, 4, 4]
    boot = summarize(whole.per_image, whole.config, index=idx)
    direct = SegEvaluator(4, gscnn=True)
    for i in idx:
        direct.update(*imgs[i])
    d = direct.compute()
    for k in ("mIoU", "mAcc", "mBF@1", "mBR@3", "mBIoU", "gscnn_F@0.00375diag"):
        assert close(boot[k], d[k]), k
    assert close(boot["trimap"][4]["band_mIoU"], d["trimap"][4]["band_mIoU"])
    w = np.bincount(idx, minlength=5)
    assert close(summarize(whole.per_image, whole.config, weights=w)["mIoU"], d["mIoU"])
    with pytest.raises(UserError):
        summarize(whole.per_image, whole.config, index=[7])


def test_many_classes_use_the_wide_histogram():
    """150 classes (ADE20K) overflow 16-bit histogram keys: the int32/np.bincount path."""
    rng = np.random.default_rng(7)
    C = 150
    lab = np.repeat(np.repeat(rng.integers(0, C, (4, 5)), 3, 0), 3, 1)
    pred = np.where(rng.random(lab.shape) < 0.3, rng.integers(0, C, lab.shape), lab)
    lab[0, :4] = V
    ev = SegEvaluator(C, bf_tolerances=TAUS, biou_width=BW, trimap_widths=WIDTHS)
    ev.update(pred, lab)
    ref = ref_summary([ref_image(pred, lab, C, TAUS, BW, WIDTHS)], C, TAUS, WIDTHS)
    assert_matches_reference(ev.compute(), ref, TAUS, WIDTHS)


def test_uint8_labels_with_other_ignore_index():
    lab = np.array([[0, 1, 1], [0, 2, 2], [9, 9, 2]])
    pred = np.array([[0, 1, 2], [0, 2, 2], [1, 0, 2]])
    a = SegEvaluator(3, ignore_index=9)
    a.update(pred, lab)
    b = SegEvaluator(3)
    b.update(pred, np.where(lab == 9, V, lab).astype(np.uint8))
    assert (
        a.compute()["IoU"] == b.compute()["IoU"]
        and a.per_image["bf_ng"].tolist() == b.per_image["bf_ng"].tolist()
    )
    c = SegEvaluator(3, ignore_index=-1)
    c.update(pred, np.where(lab == 9, -1, lab))
    assert c.compute()["mBF@3"] == b.compute()["mBF@3"]
