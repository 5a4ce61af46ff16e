"""Seeded transforms: known answers against mmseg's rules, determinism, label integrity."""

from __future__ import annotations

import numpy as np
import pytest

import srcr.data.transforms as T
from srcr.errors import UserError

MEAN = np.array(T.IMAGENET_MEAN, dtype=np.float32)
STD = np.array(T.IMAGENET_STD, dtype=np.float32)


def _sample(h=40, w=60, seed=0, values=(0, 1, 2, 7, 255)):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    lab = np.asarray(values, dtype=np.uint8)[rng.integers(0, len(values), size=(h // 4, w // 4))]
    lab = np.kron(lab, np.ones((4, 4), dtype=np.uint8))  # blocky, like real labels
    return img, lab


def _rng(seed):
    return np.random.default_rng(seed)


# --- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hw,scale,expected",
    [
        ((1024, 2048), (1024, 2048), (1024, 2048)),
        ((1024, 2048), (512, 1024), (512, 1024)),
        (
            (1024, 2048),
            (2048, 512),
            (512, 1024),
        ),  # mmseg's (2048, 512): long edge <= 2048, short <= 512
        ((375, 500), (2048, 512), (512, 683)),  # int(500 * 512/375 + 0.5) = 683
        ((512, 683), (512, 2048), (512, 683)),
        ((720, 1280), (1024, 2048), (1024, 1820)),  # short edge limits: 1280 * 1024/720 = 1820.4
    ],
)
def test_rescale_size_known_answers(hw, scale, expected):
    assert T.rescale_size(hw, scale) == expected


def test_random_resize_ratio_from_rng():
    img, lab = _sample(40, 80)
    t = T.RandomResize((64, 128), (0.5, 2.0))
    for seed in range(5):
        ratio = _rng(seed).random() * 1.5 + 0.5
        target = (int(64 * ratio), int(128 * ratio))
        out_img, out_lab = t(img, lab, _rng(seed))
        assert out_img.shape[:2] == out_lab.shape == T.rescale_size((40, 80), target)
        assert out_img.dtype == np.uint8
        assert set(np.unique(out_lab)) <= set(np.unique(lab))


def test_resize_nearest_reference():
    rng = _rng(1)
    for _ in range(50):
        H, W = rng.integers(1, 30, 2)
        h, w = rng.integers(1, 70, 2)
        a = rng.integers(0, 256, size=(H, W)).astype(np.uint8)
        out = T.resize_nearest(a, (h, w))
        # OpenCV's INTER_NEAREST rule, src = floor(dst * (1 / (dst_n / src_n))), pixel by pixel
        ref = np.array(
            [
                [
                    a[min(int(y * (1.0 / (h / H))), H - 1), min(int(x * (1.0 / (w / W))), W - 1)]
                    for x in range(w)
                ]
                for y in range(h)
            ],
            dtype=np.uint8,
        ).reshape(h, w)
        np.testing.assert_array_equal(out, ref)


@pytest.mark.skipif(T.cv2 is None, reason="OpenCV not installed")
def test_resize_nearest_matches_opencv():
    import cv2

    rng = _rng(2)
    for _ in range(100):
        H, W = rng.integers(1, 50, 2)
        h, w = rng.integers(1, 120, 2)
        a = rng.integers(0, 256, size=(H, W)).astype(np.uint8)
        ref = cv2.resize(a, (int(w), int(h)), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(T.resize_nearest(a, (h, w)), ref)


def test_bilinear_pil_fallback_close_to_opencv(monkeypatch):
    img, _ = _sample(30, 40)
    out_default = T.resize_bilinear(img, (45, 60))
    monkeypatch.setattr(T, "cv2", None)
    out_pil = T.resize_bilinear(img, (45, 60))
    assert out_pil.shape == out_default.shape == (45, 60, 3) and out_pil.dtype == np.uint8
    if out_default is not out_pil:
        assert np.abs(out_pil.astype(int) - out_default).mean() < 2.0
    f = T.resize_bilinear(img.astype(np.float32), (45, 60))
    assert f.dtype == np.float32 and np.abs(f - out_pil).max() <= 1.0


def test_eval_resize_keeps_label():
    img, lab = _sample(40, 60)
    out_img, out_lab = T.build_eval_transforms((2048, 512))(img, lab, None)
    assert out_img.shape == (512, 768, 3) and out_img.dtype == np.float32
    assert out_lab is lab
    out_img, out_lab = T.Resize((20, 30), resize_label=True)(img, lab)
    assert out_img.shape[:2] == out_lab.shape == (20, 30)


# --- crop / pad / flip ----------------------------------------------------------------------------


def test_random_crop_window_from_rng():
    img, lab = _sample(40, 60)
    t = T.RandomCrop((16, 24), cat_max_ratio=1.0)
    for seed in range(5):
        r = _rng(seed)
        y, x = int(r.integers(0, 40 - 16 + 1)), int(r.integers(0, 60 - 24 + 1))
        ci, cl = t(img, lab, _rng(seed))
        np.testing.assert_array_equal(ci, img[y : y + 16, x : x + 24])
        np.testing.assert_array_equal(cl, lab[y : y + 16, x : x + 24])


def test_random_crop_cat_max_ratio():
    # class 1 in columns 20..39 of a 60x60 map, class 0 elsewhere: 18 of the 41 horizontal
    # positions of a 20x20 window give both classes with the larger one < 75%.
    lab = np.zeros((60, 60), np.uint8)
    lab[:, 20:40] = 1
    lab[:5] = 255  # ignored pixels do not count
    img = np.zeros((60, 60, 3), np.uint8)

    def ok(crop):
        c = np.bincount(crop[crop != 255].ravel(), minlength=2)
        return (c > 0).sum() > 1 and c.max() / c.sum() < 0.75

    with_ratio = [ok(T.RandomCrop((20, 20), 0.75)(img, lab, _rng(s))[1]) for s in range(200)]
    without = [ok(T.RandomCrop((20, 20), 1.0)(img, lab, _rng(s))[1]) for s in range(200)]
    assert np.mean(with_ratio) > 0.97  # failure needs 11 bad draws: 0.56**11 ~ 0.2%
    assert 0.25 < np.mean(without) < 0.65
    # impossible to satisfy: still a crop of the right size
    ci, cl = T.RandomCrop((20, 20), 0.75)(img, np.zeros((60, 60), np.uint8), _rng(0))
    assert ci.shape == (20, 20, 3) and cl.shape == (20, 20)


def test_crop_smaller_image_then_pad():
    img, lab = _sample(12, 16)
    ci, cl = T.RandomCrop((20, 24))(img, lab, _rng(0))
    np.testing.assert_array_equal(ci, img)
    pi, pl = T.Pad((20, 24))(ci.astype(np.float32), cl)
    assert pi.shape == (20, 24, 3) and pl.shape == (20, 24)
    np.testing.assert_array_equal(pi[:12, :16], img)
    assert np.all(pi[12:] == 0) and np.all(pi[:, 16:] == 0)
    assert np.all(pl[12:] == 255) and np.all(pl[:, 16:] == 255)
    np.testing.assert_array_equal(pl[:12, :16], lab)


def test_flip_flips_both():
    img, lab = _sample()
    fi, fl = T.RandomFlip(1.0)(img, lab, _rng(0))
    np.testing.assert_array_equal(fi, img[:, ::-1])
    np.testing.assert_array_equal(fl, lab[:, ::-1])
    ni, nl = T.RandomFlip(0.0)(img, lab, _rng(0))
    assert ni is img and nl is lab
    flips = [T.RandomFlip(0.5)(img, lab, _rng(s))[1] is not lab for s in range(100)]
    assert 30 < sum(flips) < 70
    assert [_rng(s).random() < 0.5 for s in range(100)] == flips


# --- photometric / normalize ----------------------------------------------------------------------


def test_normalize_numbers():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = [124, 116, 104]
    img[1, 1] = [255, 255, 255]
    out, _ = T.Normalize()(img, None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], (np.array([124, 116, 104]) - MEAN) / STD, rtol=1e-6)
    np.testing.assert_allclose(out[1, 1], (255 - MEAN) / STD, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], -MEAN / STD, rtol=1e-6)
    np.testing.assert_allclose(
        T.Normalize([10, 20, 30], [2, 4, 5])(np.full((1, 1, 3), 40, np.uint8), None)[0],
        [[[15.0, 5.0, 2.0]]],
    )
    with pytest.raises(UserError):
        T.Normalize([1, 2], [1, 2, 3])


def test_photometric_distortion():
    img, lab = _sample(32, 32)
    t = T.PhotoMetricDistortion()
    a, la = t(img, lab, _rng(5))
    b, _ = t(img, lab, _rng(5))
    assert a.dtype == np.uint8 and a.shape == img.shape and la is lab
    np.testing.assert_array_equal(a, b)
    outs = [t(img, lab, _rng(s))[0] for s in range(20)]
    assert sum(not np.array_equal(o, img) for o in outs) >= 15  # (1/2)^5 chance to be untouched
    # grey stays grey (saturation 0, hue irrelevant); brightness/contrast act per pixel value
    grey = np.repeat(np.arange(0, 256, 4, dtype=np.uint8)[:, None, None], 3, axis=2)
    for s in range(10):
        g, _ = t(grey, None, _rng(s))
        assert np.all(g[..., 0] == g[..., 1]) and np.all(g[..., 1] == g[..., 2])
        assert np.all(np.diff(g[:, 0, 0].astype(int)) >= 0)  # monotone in the input
    # brightness only: a constant shift of unclipped pixels
    only_b = T.PhotoMetricDistortion(contrast_range=(1, 1), saturation_range=(1, 1), hue_delta=0)
    g, _ = only_b(grey, None, _rng(0))
    d = g[20:40, 0, 0].astype(int) - grey[20:40, 0, 0]
    assert np.all(d == d[0])


def test_hsv_known_answers(monkeypatch):
    rgb = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [255, 255, 0], [0, 0, 0]]],
        np.uint8,
    )
    expected = np.array(
        [[[0, 255, 255], [60, 255, 255], [120, 255, 255], [0, 0, 128], [30, 255, 255], [0, 0, 0]]]
    )
    for backend in ("default", "numpy"):
        if backend == "numpy":
            monkeypatch.setattr(T, "cv2", None)
        np.testing.assert_array_equal(T.rgb_to_hsv(rgb), expected)
        np.testing.assert_array_equal(T.hsv_to_rgb(expected.astype(np.uint8)), rgb)


@pytest.mark.skipif(T.cv2 is None, reason="OpenCV not installed")
def test_hsv_numpy_fallback_matches_opencv(monkeypatch):
    img, _ = _sample(64, 64, seed=3)
    hsv_cv, rgb_cv = T.rgb_to_hsv(img), T.hsv_to_rgb(T.rgb_to_hsv(img))
    monkeypatch.setattr(T, "cv2", None)
    hsv_np = T.rgb_to_hsv(img)
    dh = np.abs(hsv_np[..., 0].astype(int) - hsv_cv[..., 0])
    assert (
        np.minimum(dh, 180 - dh).max() <= 1
        and np.abs(hsv_np[..., 1:].astype(int) - hsv_cv[..., 1:]).max() <= 1
    )
    assert np.abs(T.hsv_to_rgb(hsv_cv).astype(int) - rgb_cv).max() <= 1


# --- whole pipelines ------------------------------------------------------------------------------

PIPE = {
    "scale": [48, 96],
    "ratio_range": [0.5, 2.0],
    "crop_size": [32, 32],
    "cat_max_ratio": 0.75,
    "flip_prob": 0.5,
    "photometric": True,
}


def test_train_pipeline_deterministic_and_labels_preserved():
    img, lab = _sample(40, 80)
    t = T.build_train_transforms(PIPE, T.IMAGENET_MEAN, T.IMAGENET_STD)
    names = [type(x).__name__ for x in t.transforms]
    assert names == [
        "RandomResize",
        "RandomCrop",
        "RandomFlip",
        "PhotoMetricDistortion",
        "Normalize",
        "Pad",
    ]
    outs = {}
    for seed in range(12):
        a_img, a_lab = t(img, lab, _rng(seed))
        b_img, b_lab = t(img, lab, _rng(seed))
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_lab, b_lab)
        assert a_img.shape == (32, 32, 3) and a_img.dtype == np.float32 and a_lab.shape == (32, 32)
        assert set(np.unique(a_lab)) <= set(np.unique(lab)) | {255}
        outs[seed] = a_img
    assert not np.array_equal(outs[0], outs[1])
    # small scales: the crop is padded (normalised image 0, label 255)
    small = dict(PIPE, scale=[16, 32], ratio_range=[1.0, 1.0])
    s_img, s_lab = T.build_train_transforms(small)(img, lab, _rng(0))
    assert s_img.shape == (32, 32, 3) and np.all(s_img[16:] == 0) and np.all(s_lab[16:] == 255)


def test_build_options_and_errors():
    t = T.build_train_transforms(
        {"scale": None, "crop_size": None, "flip_prob": 0, "photometric": False}
    )
    assert [type(x).__name__ for x in t.transforms] == ["Normalize"]
    data_cfg = {"train_pipeline": PIPE, "mean": [0, 0, 0], "std": [1, 1, 1]}
    t = T.build_train_transforms(data_cfg)
    assert t.transforms[-2].mean.ravel().tolist() == [0, 0, 0]
    with pytest.raises(UserError, match="unknown key"):
        T.build_train_transforms({"scales": [1, 2]})
    with pytest.raises(UserError, match="crop_size"):
        T.build_train_transforms({"crop_size": [512]})
    with pytest.raises(UserError, match="flip_prob"):
        T.build_train_transforms({"flip_prob": 2})
    e = T.build_eval_transforms({"mean": [1, 2, 3], "std": [1, 1, 1]})
    assert [type(x).__name__ for x in e.transforms] == ["Normalize"]
    assert e(np.full((1, 1, 3), 10, np.uint8), None, None)[0].ravel().tolist() == [9, 8, 7]
