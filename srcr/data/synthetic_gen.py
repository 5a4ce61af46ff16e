"""The procedurally generated synthetic dataset: srcr's embedded default, and `srcr synth`.

Street/harbour scenes built so that the two questions of arXiv 2412.08671 can be measured at CPU
scale with tiny models: *alignment* (SRM vs bilinear upsampling) through sharp, off-grid boundaries,
thin structures 2-4 px wide (``pole``, ``lane``) and small objects (``window``); *context*
(CRM vs none) through two classes drawn by one shared appearance function (``car`` and ``boat``)
that only the region around them tells apart, regions (``road`` and ``water``) that are themselves
drawn alike and differ only in texture patches and lane markings somewhere along them, and a
contact shadow that darkens the region right next to each object. Textures, shading, cast shadows,
per-image colour jitter and noise keep colour alone from segmenting the scene; void rims and an
ego-vehicle hood give ignore pixels (255), as real datasets have. See docs/synthetic.md.

Every image is drawn from its own ``numpy.random.Generator`` seeded by ``SeedSequence([seed,
split_id, index])``, so image *i* does not depend on the split size, the worker count or the order
in which workers finish; PNGs are written with fixed parameters, so the same seed gives
byte-identical files (with the same NumPy and Pillow versions, recorded in meta.json).
"""

from __future__ import annotations

import argparse
import colorsys
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UserError
from ..utils.io import write_json

# Bump whenever the pixels written for a given (seed, split, index, size) change; ensure_synthetic()
# then refuses an old dataset instead of silently mixing results from two different generators.
GENERATOR_VERSION = 3
FORMAT = "srcr-synthetic"
IGNORE_INDEX = 255
SPLIT_IDS = {"train": 0, "val": 1}
MIN_SIZE = 32

# How strongly the road/water identity shows: the amplitude of the asphalt grain / ripple texture
# (relative to the surface brightness), and the peak opacity range of the contact shadow. Version 2
# had 0.2 and 0.75-0.95: whether a one-minute CPU run told road from water, and so car from boat,
# then depended on the seed (mIoU 63-69 over four seeds); see docs/synthetic.md, "Version 3".
IDENTITY_TEXTURE = 0.5
SHADOW_OPACITY = (0.3, 0.5)

CLASSES = ["sky", "building", "road", "water", "grass", "window", "lane", "pole", "car", "boat"]
SKY, BUILDING, ROAD, WATER, GRASS, WINDOW, LANE, POLE, CAR, BOAT = range(len(CLASSES))
NUM_CLASSES = len(CLASSES)

# Visualisation colours only; the rendered appearance is drawn per image (see _BASE / _jitter).
PALETTE = [
    [70, 130, 180],   # sky
    [70, 70, 70],     # building
    [128, 64, 128],   # road
    [0, 170, 200],    # water
    [107, 142, 35],   # grass
    [250, 170, 30],   # window
    [255, 255, 255],  # lane
    [153, 153, 153],  # pole
    [0, 0, 142],      # car
    [220, 20, 60],    # boat
]

DESCRIPTIONS = {
    "sky": "region above a tilted, wavy horizon; vertical gradient and clouds (overlaps water in colour)",
    "building": "facades rising from the horizon, flat or sloped roofs, mortar-line texture, any hue",
    "road": "context region: ground band (or part of one); same colour distribution and plain texture as "
            "water, told apart only by patches of asphalt grain and by the lane markings along it; cars "
            "sit on it",
    "water": "context region: ground band drawn like road, told apart only by patches of ripples "
             "somewhere along it; boats sit on it",
    "grass": "ground band with streaky vegetation texture, green to dry brown",
    "window": "small object: 5-9 x 6-10 px rectangles in a grid on facades, mostly dark, some lit",
    "lane": "thin structure: markings 2-4 px thick, solid or dashed, following the road band",
    "pole": "thin structure: vertical (slightly tilted) poles 2-4 px wide from the ground into the sky, "
            "some with a 2-3 px arm",
    "car": "context class: a render_vehicle() blob with a render_shadow() contact shadow, placed "
           "inside a road region",
    "boat": "context class: the same render_vehicle() blob and shadow, placed inside a water region",
}
GROUPS = {
    "regions": ["sky", "building", "road", "water", "grass"],
    "thin": ["lane", "pole"],
    "small": ["window"],
    "context_pairs": [["car", "boat"], ["road", "water"]],
}
VOID_DESCRIPTION = ("255 = ignore: a 1 px rim around some cars and boats, and an ego-vehicle hood "
                    "at the bottom of some images")

# Base appearance colours (RGB in [0, 1]) that the per-image jitter starts from.
_BASE = {
    SKY: (0.55, 0.70, 0.90),
    BUILDING: (0.58, 0.52, 0.46),
    ROAD: (0.36, 0.36, 0.38),      # also water's: the two surfaces share one colour distribution
    GRASS: (0.33, 0.50, 0.20),
    WINDOW: (0.14, 0.17, 0.22),
    LANE: (0.90, 0.90, 0.86),
}
# (hue shift, relative saturation change, relative value change), all +-
_JITTER = {
    SKY: (0.05, 0.4, 0.25),
    BUILDING: (0.5, 0.7, 0.35),
    ROAD: (0.5, 0.9, 0.35),
    GRASS: (0.08, 0.4, 0.35),
    WINDOW: (0.5, 0.6, 0.4),
    LANE: (0.5, 0.5, 0.1),
}


# --------------------------------------------------------------------------------------------
# small numpy helpers

def _jitter(rng: np.random.Generator, cls: int) -> np.ndarray:
    dh, ds, dv = _JITTER[cls]
    h, s, v = colorsys.rgb_to_hsv(*_BASE[cls])
    h = (h + rng.uniform(-dh, dh)) % 1.0
    s = min(1.0, max(0.0, s * rng.uniform(1 - ds, 1 + ds)))
    v = min(1.0, max(0.0, v * rng.uniform(1 - dv, 1 + dv)))
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _resize_grid(g: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a small random grid to h x w (smooth, low-frequency noise)."""
    gy, gx = g.shape
    y = np.linspace(0, gy - 1, h, dtype=np.float32)
    x = np.linspace(0, gx - 1, w, dtype=np.float32)
    y0 = np.minimum(y.astype(np.int64), gy - 2)
    x0 = np.minimum(x.astype(np.int64), gx - 2)
    fy = (y - y0)[:, None]
    fx = (x - x0)[None, :]
    r0, r1 = g[y0], g[y0 + 1]
    top = r0[:, x0] + (r0[:, x0 + 1] - r0[:, x0]) * fx
    bot = r1[:, x0] + (r1[:, x0 + 1] - r1[:, x0]) * fx
    return top + (bot - top) * fy


def _smooth(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    return _resize_grid(rng.standard_normal((cells[0] + 1, cells[1] + 1), dtype=np.float32), h, w)


def _curve(rng: np.random.Generator, w: int, amp: float, knots: int) -> np.ndarray:
    """A piecewise-linear random curve over the columns (horizon and band boundaries). Label geometry
    uses arithmetic only (no trigonometry), which keeps labels stable across CPUs' SIMD paths."""
    xp = np.linspace(0.0, w - 1.0, knots)
    return np.interp(np.arange(w, dtype=np.float64), xp, rng.normal(0.0, amp, knots))


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1) x (2r+1) square; the result is r px larger on every side."""
    h, w = mask.shape
    out = np.zeros((h + 2 * r, w + 2 * r), bool)
    rows = np.zeros((h, w + 2 * r), bool)
    for d in range(2 * r + 1):
        rows[:, d:d + w] |= mask
    for d in range(2 * r + 1):
        out[d:d + h, :] |= rows
    return out


def _clip_box(top: int, left: int, h: int, w: int, H: int, W: int):
    """Frame slices and patch slices of a h x w patch at (top, left), or None if fully outside."""
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, H), min(left + w, W)
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


# --------------------------------------------------------------------------------------------
# the shared appearance of the context classes

def render_vehicle(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One vehicle-like blob (hull/body, cabin with dark glass, dark bottom strip), h x w.

    Used for BOTH ``car`` and ``boat``: the class never enters this function, so the two classes
    have identical appearance statistics and only their surroundings (road vs water) differ.
    Returns (rgb float32 h x w x 3 in [0, 1]-ish, mask bool h x w).
    """
    yb = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
    xu = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w
    split = rng.uniform(0.35, 0.5)
    taper = rng.uniform(0.0, 0.12)
    tb = np.clip((yb - split) / (1 - split), 0, 1)
    body = (yb >= split) & (xu >= taper * tb) & (xu <= 1 - taper * tb)
    c0, c1, slant = rng.uniform(0.08, 0.35), rng.uniform(0.6, 0.92), rng.uniform(0.03, 0.12)
    frac = np.clip((split - yb) / split, 0, 1)
    left, right = c0 + slant * frac, c1 - slant * frac
    cabin = (yb < split) & (xu >= left) & (xu <= right)
    mask = body | cabin
    colour = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.25, 0.9),
                                          rng.uniform(0.35, 0.95)), np.float32)
    shade = (1.15 - 0.35 * yb)[..., None]
    rgb = np.broadcast_to(colour * shade, (h, w, 3)).copy()
    glass = cabin & (yb > 0.25 * split) & (yb < 0.9 * split) & (xu >= left + 0.05) & (xu <= right - 0.05)
    glass_rgb = np.array([0.15, 0.18, 0.23], np.float32) * rng.uniform(0.7, 1.5)
    rgb[glass] = glass_rgb
    rgb[(yb > 0.85).repeat(w, 1) & body] *= 0.45
    if rng.random() < 0.5:
        rgb, mask = rgb[:, ::-1].copy(), mask[:, ::-1].copy()
    return rgb, mask


def render_shadow(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, int]:
    """The contact shadow / reflection under a vehicle: (alpha (h+2p) x (w+2p), p).

    Shared by car and boat like render_vehicle(). It darkens (by SHADOW_OPACITY) the road/water
    texture right around the object, so the region that tells a car from a boat is seen most
    clearly further away: that is the context that the CRM (and its partners) is meant to bring.
    """
    pad = max(2, int(round(rng.uniform(0.2, 0.4) * h)))
    yy = np.arange(h + 2 * pad, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(w + 2 * pad, dtype=np.float32)[None, :] + 0.5
    cy, cx = pad + rng.uniform(0.75, 0.95) * h, pad + w / 2
    ry, rx = rng.uniform(0.3, 0.5) * h + pad, w / 2 + pad
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    return rng.uniform(*SHADOW_OPACITY) * np.clip((1 - d) / 0.3, 0, 1), pad


# --------------------------------------------------------------------------------------------
# the scene

def _rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]))


def generate_sample(seed: int, split: str, index: int, size: Sequence[int],
                    return_instances: bool = False):
    """Render image ``index`` of ``split``: (image uint8 HxWx3, label uint8 HxW[, instances]).

    ``instances`` (for tests and analysis) lists every placed car/boat as a dict with ``cls``,
    ``top``, ``left`` and its ``mask`` (bool patch, before occlusion by later objects).
    """
    H, W = int(size[0]), int(size[1])
    rng = _rng_for(seed, split, index)
    s = H / 128.0                              # absolute sizes scale with the height; thin widths do not
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    xs = np.arange(W, dtype=np.float64)
    img = np.zeros((H, W, 3), np.float32)
    lab = np.full((H, W), IGNORE_INDEX, np.uint8)
    instances: list[dict[str, Any]] = []

    def paint(mask, rgb, cls, ys=slice(None), xs_=slice(None)):
        # mask/rgb cover the window img[ys, xs_]; rgb may be anything broadcastable to it
        np.copyto(img[ys, xs_], rgb, where=mask[..., None])
        lab[ys, xs_][mask] = cls

    # ---- horizon and sky
    hz = rng.uniform(0.30, 0.50) * H + rng.uniform(-0.06, 0.06) * (xs - W / 2) + _curve(rng, W, 0.012 * H, 6)
    hz = np.clip(hz, 0.18 * H, 0.62 * H).astype(np.float32)
    sky = yy < hz[None, :]
    c = _jitter(rng, SKY)
    t = np.clip(yy / hz[None, :], 0, 1)
    clouds = np.clip(_smooth(rng, H, W, (3, 6)) * 0.6 - rng.uniform(0.0, 0.7), 0, 1) * rng.uniform(0.3, 0.9)
    sky_rgb = (c * (0.8 + 0.35 * t)[..., None]) * (1 - clouds[..., None]) + 0.92 * clouds[..., None]
    paint(sky, sky_rgb, SKY)

    # ---- ground bands (perspective: the far ones are thinner), optionally one split left/right
    k = 3 if rng.random() < 0.6 else 2
    fracs = [rng.uniform(0.2, 0.4), rng.uniform(0.55, 0.75)] if k == 3 else [rng.uniform(0.3, 0.6)]
    curves = [hz.astype(np.float64)]
    for f in fracs:
        b = hz + f * (H - hz) + rng.uniform(-0.04, 0.04) * (xs - W / 2) + _curve(rng, W, 0.01 * H, 5)
        curves.append(np.maximum(b, curves[-1]))
    curves.append(np.full(W, float(H)))
    if k == 3:
        types = [int(v) for v in rng.permutation([ROAD, WATER, GRASS])]
    else:
        pair = [(ROAD, WATER), (ROAD, GRASS), (WATER, GRASS)][rng.choice(3, p=[0.5, 0.25, 0.25])]
        types = [int(v) for v in rng.permutation(pair)]
    band = np.zeros((H, W), np.int64)
    for b in curves[1:-1]:
        band += yy >= b[None, :].astype(np.float32)
    regions = []   # (type, mask, band index)
    band_rows = []
    for j in range(k):
        r0 = int(np.floor(curves[j].min()))
        band_rows.append(slice(r0, max(r0 + 1, min(H, int(np.ceil(curves[j + 1].max())) + 1))))
    split_band = int(rng.integers(k)) if rng.random() < 0.3 else -1
    for j in range(k):
        m = ~sky & (band == j)
        if j == split_band:
            other = [v for v in (ROAD, WATER, GRASS) if v != types[j]]
            right_type = int(other[rng.integers(2)])
            xsplit = rng.uniform(0.3, 0.7) * W + rng.uniform(-0.3, 0.3) * (yy - hz.mean())
            right = xx >= xsplit
            regions += [(types[j], m & ~right, j), (right_type, m & right, j)]
        else:
            regions.append((types[j], m, j))

    for typ, m, j in regions:
        ys = band_rows[j]
        h = ys.stop - ys.start
        if typ in (ROAD, WATER):
            # one shared colour distribution and plain base texture; the identity shows only in
            # patches (asphalt grain vs ripples) and in the lanes, somewhere along the band
            c = _jitter(rng, ROAD)
            v = 1 + 0.04 * _smooth(rng, h, W, (3, 8))
            patch = np.clip((_smooth(rng, h, W, (2, 6)) - rng.uniform(-1.6, -0.8)) * 3, 0, 1)
            if typ == ROAD:
                v = v + patch * IDENTITY_TEXTURE * rng.standard_normal((h, W), dtype=np.float32)
            else:
                lam = rng.uniform(2.5, 6.0) * s
                v = v + patch * IDENTITY_TEXTURE * np.sin(2 * np.pi * yy[ys] / lam + 2.5 * _smooth(rng, h, W, (3, 6)))
        else:
            c = _jitter(rng, typ)
            v = (1 + 0.10 * rng.standard_normal((1, W), dtype=np.float32)
                 + 0.07 * rng.standard_normal((h, W), dtype=np.float32) + 0.10 * _smooth(rng, h, W, (6, 12)))
        paint(m[ys], c * v[..., None], typ, ys)

    # ---- buildings with window grids (in the sky region, standing on the horizon)
    for _ in range(int(rng.choice(6, p=[0.05, 0.1, 0.25, 0.3, 0.2, 0.1]))):
        bw = int(rng.uniform(0.1, 0.35) * W)
        x0 = int(rng.uniform(-0.1 * W, W - 0.5 * bw))
        x1 = x0 + bw
        ca, cb = max(x0, 0), min(x1, W)
        if cb - ca < 2:
            continue
        hz_min = float(hz[ca:cb].min())
        hi = hz_min - 0.12 * H
        top = rng.uniform(0.06 * H, max(hi, 0.06 * H + 1))
        slope = 0.0 if rng.random() < 0.7 else rng.uniform(-0.15, 0.15)
        # everything below is computed in the building's bounding box only (speed)
        R = int(np.ceil(hz[ca:cb].max())) + 1
        win = (slice(0, R), slice(ca, cb))
        yy_, xx_ = yy[:R], xx[:, ca:cb]
        bmask = (yy_ >= top + slope * (xx_ - x0)) & sky[win]
        c = _jitter(rng, BUILDING)
        period = max(2, int(round(rng.uniform(3, 6) * s)))
        rows = (np.floor(yy_ - top) % period == 0)
        v = (1 - 0.1 * rows) * (1 + 0.05 * _smooth(rng, R, cb - ca, (4, 8))) * (1.05 - 0.1 * yy_ / H)
        paint(bmask, c * v[..., None], BUILDING, *win)
        # windows: a regular grid below the highest roof point, whole cells only
        ww, wh = max(2, int(round(rng.uniform(5, 9) * s))), max(2, int(round(rng.uniform(6, 10) * s)))
        gx, gy = max(2, int(round(rng.uniform(5, 8) * s))), max(2, int(round(rng.uniform(5, 7) * s)))
        mx = max(2, int(round(rng.uniform(2, 5) * s)))
        wtop = int(np.ceil(max(top, top + slope * bw))) + mx
        ncols = (bw - 2 * mx + gx) // (ww + gx)
        nrows = (int(hz_min) - 2 - wtop + gy) // (wh + gy)
        if ncols < 1 or nrows < 1:
            continue
        u = (xx_ - (x0 + mx)).astype(np.int64)
        w_ = (yy_ - wtop).astype(np.int64)
        ci, ri = u // (ww + gx), w_ // (wh + gy)
        inside = (u >= 0) & (w_ >= 0) & (ci < ncols) & (ri < nrows) & (u % (ww + gx) < ww) & (w_ % (wh + gy) < wh)
        present = rng.random((nrows, ncols)) < 0.85
        lit = rng.random((nrows, ncols)) < 0.15
        rr, cc = np.clip(ri, 0, nrows - 1), np.clip(ci, 0, ncols - 1)
        inside &= present[rr, cc] & bmask
        c = _jitter(rng, WINDOW)
        lit_c = np.array([0.95, 0.82, 0.45], np.float32) * rng.uniform(0.8, 1.05)
        glow = (1.25 - 0.5 * (w_ % (wh + gy)) / wh)[..., None]       # a reflection gradient per pane
        win_rgb = np.where(lit[rr, cc][..., None], lit_c, c * glow)
        paint(inside, win_rgb, WINDOW, *win)

    # ---- lane markings following the road bands
    for typ, m, j in regions:
        if typ != ROAD:
            continue
        top_c, bot_c = curves[j], curves[j + 1]
        thick = bot_c - top_c
        if np.median(thick) < 8:
            continue
        nl = int(rng.choice(3, p=[0.05, 0.55, 0.4]))
        ts = sorted(rng.uniform(0.25, 0.75, nl))
        last_bottom = None
        ys = band_rows[j]
        yy_ = yy[ys]
        for tt in ts:
            th = int(rng.choice([2, 3, 4], p=[0.35, 0.4, 0.25]))
            yl = np.floor(top_c + tt * thick).astype(np.float32)
            if last_bottom is not None and np.any(yl < last_bottom + 4):
                continue    # two lines this close would merge into one thick (non-thin) structure
            lmask = (yy_ >= yl[None, :]) & (yy_ < yl[None, :] + th) & m[ys]
            if rng.random() < 0.5:
                dash, gap = rng.uniform(6, 16) * s, rng.uniform(4, 12) * s
                lmask &= ((xs + rng.uniform(0, dash + gap)) % (dash + gap) < dash)[None, :]
            last_bottom = yl + th
            c = _jitter(rng, LANE) if rng.random() < 0.7 else np.array([0.9, 0.75, 0.2], np.float32)
            paint(lmask, c * (0.95 + 0.1 * rng.random(lmask.shape, dtype=np.float32))[..., None], LANE, ys)

    # ---- cars on road, boats on water: one placement procedure and one appearance function
    shadow_rgb = np.full(3, rng.uniform(0.05, 0.15), np.float32)
    for typ, m, j in regions:
        if typ not in (ROAD, WATER):
            continue
        cls = CAR if typ == ROAD else BOAT
        top_c, bot_c = curves[j], curves[j + 1]
        for _ in range(int(rng.choice(5, p=[0.1, 0.25, 0.3, 0.2, 0.15]))):
            for _attempt in range(12):
                xc = rng.uniform(0, W)
                xi = min(int(xc), W - 1)
                T = bot_c[xi] - top_c[xi]
                h = int(T * rng.uniform(0.45, 0.9))
                if h < 4 or T - h - 4 < 0:
                    continue
                w = max(6, int(h * rng.uniform(1.6, 3.2)))
                top = int(round(bot_c[xi] - 2 - rng.uniform(0, T - h - 4) - h))
                left = int(round(xc - w / 2))
                rgb, pm = render_vehicle(rng, h, w)
                # the vehicle and a 2 px margin must lie inside its region: its surroundings are
                # then all road (or all water), the only cue that tells a car from a boat; the
                # shadow below then dims the nearest few pixels of that cue
                box = _clip_box(top - 2, left - 2, h + 4, w + 4, H, W)
                if box is None or top - 2 < 0 or top + h + 2 > H:
                    continue
                (fy, fx), (py, px) = box
                if not np.all(m[fy, fx][_dilate(pm, 2)[py, px]]):
                    continue
                alpha, pad = render_shadow(rng, h, w)
                sbox = _clip_box(top - pad, left - pad, h + 2 * pad, w + 2 * pad, H, W)
                if sbox is not None:
                    (fy, fx), (py, px) = sbox
                    a = alpha[py, px, None]
                    img[fy, fx] = img[fy, fx] * (1 - a) + a * shadow_rgb
                (fy, fx), (py, px) = _clip_box(top, left, h, w, H, W)
                sub = pm[py, px]
                img[fy, fx][sub] = rgb[py, px][sub]
                lab[fy, fx][sub] = cls
                if rng.random() < 0.4:          # a 1 px void rim, as hand-labelled datasets leave
                    (fy, fx), (py, px) = _clip_box(top - 1, left - 1, h + 2, w + 2, H, W)
                    rim = _dilate(pm, 1) & ~np.pad(pm, 1)
                    lab[fy, fx][rim[py, px]] = IGNORE_INDEX
                instances.append({"cls": cls, "top": top, "left": left, "mask": pm})
                break

    # ---- poles (in front of everything): 2-4 px wide, never adjacent to each other
    used: list[float] = []
    for _ in range(int(rng.choice(7, p=[0.05, 0.1, 0.2, 0.25, 0.2, 0.1, 0.1]))):
        pw = int(rng.choice([2, 3, 4], p=[0.2, 0.4, 0.4]))
        xb = rng.uniform(2, W - 5)
        if any(abs(xb - u_) < 10 for u_ in used):
            continue
        used.append(xb)
        hzb = float(hz[int(xb)])
        yb = int(hzb + rng.uniform(0.1, 0.7) * (H - hzb))
        yt = int(rng.uniform(0.04 * H, max(hzb - 0.12 * H, 0.04 * H + 1)))
        tilt = rng.uniform(-0.05, 0.05) if rng.random() < 0.5 else 0.0
        ta = int(rng.choice([2, 3])) if rng.random() < 0.5 else 0     # a street-light arm, 2-3 px thick
        la = max(3, int(rng.uniform(4, 12) * s))
        arm_right = rng.random() < 0.5
        # bounding box: the pole's rows, its columns plus room for the arm
        ys = slice(yt, min(yb + 1, H))
        c0 = max(0, int(xb) - int(abs(tilt) * H) - la - 2)
        xs_ = slice(c0, min(W, int(xb) + int(abs(tilt) * H) + la + pw + 3))
        yy_, xx_ = yy[ys], xx[:, xs_]
        xl = np.floor(xb + tilt * (yy_ - yb))
        pmask = (xx_ >= xl) & (xx_ < xl + pw)
        if ta:
            xtop = float(np.floor(xb + tilt * (yt - yb)))
            a0, a1 = (xtop + pw, xtop + pw + la) if arm_right else (xtop - la, xtop)
            pmask |= (yy_ < yt + ta) & (xx_ >= a0) & (xx_ < a1)
        grey = rng.uniform(0.05, 0.3) if rng.random() < 0.8 else rng.uniform(0.85, 1.0)
        c = np.array([grey, grey, grey * rng.uniform(0.9, 1.15)], np.float32)
        paint(pmask, (c * (1.1 - 0.25 * yy_ / H)[..., None]), POLE, ys, xs_)

    # ---- ego-vehicle hood: a void region at the bottom of some images
    if rng.random() < 0.2:
        hh, cxh, rx = rng.uniform(0.07, 0.15) * H, rng.uniform(0.3, 0.7) * W, rng.uniform(0.5, 0.9) * W
        q = np.clip(1 - ((xs - cxh) / rx) ** 2, 0, 1)
        hood = yy >= (H - hh * np.sqrt(q))[None, :].astype(np.float32)
        c = np.full(3, rng.uniform(0.1, 0.3), np.float32)
        img[hood] = (c * (0.8 + 0.4 * (yy / H)[..., None] * np.ones((1, W, 1), np.float32)))[hood]
        lab[hood] = IGNORE_INDEX

    # ---- illumination: a global gradient, soft cast shadows across classes, a colour cast, noise
    th_ = rng.uniform(0, 2 * np.pi)
    illum = 1 + rng.uniform(0, 0.35) * ((xx - W / 2) * np.cos(th_) + (yy - H / 2) * np.sin(th_)) / (0.5 * max(H, W))
    for _ in range(int(rng.choice(3, p=[0.5, 0.3, 0.2]))):
        cx, cy = rng.uniform(0, W), rng.uniform(hz.mean(), H)
        rx, ry = rng.uniform(0.08, 0.3) * W, rng.uniform(0.04, 0.12) * H
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        illum = illum * (1 - rng.uniform(0.2, 0.5) * np.clip((1.2 - d) / 0.4, 0, 1))
    img *= illum[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    img += rng.standard_normal((H, W, 3), dtype=np.float32) * np.float32(rng.uniform(0.01, 0.03))
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if return_instances:
        return image, lab, instances
    return image, lab


# --------------------------------------------------------------------------------------------
# writing a dataset

def _png_name(i: int) -> str:
    return f"{i:05d}.png"


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    # fixed parameters and no metadata chunks: the bytes depend on the pixels only
    Image.fromarray(arr).save(path, format="PNG", compress_level=6, optimize=False)


def _generate_chunk(out: str, split: str, indices: list[int], seed: int, size: tuple[int, int]) -> np.ndarray:
    """Worker: write images/labels for ``indices``; return the label histogram (256 bins)."""
    counts = np.zeros(256, np.int64)
    root = Path(out)
    for i in indices:
        image, label = generate_sample(seed, split, i, size)
        _write_png(root / "images" / split / _png_name(i), image)
        _write_png(root / "labels" / split / _png_name(i), label)
        counts += np.bincount(label.ravel(), minlength=256)
    return counts


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _meta(n_train: int, n_val: int, size: tuple[int, int], seed: int, counts: dict[str, np.ndarray]) -> dict:
    import PIL

    return {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "splits": {"train": int(n_train), "val": int(n_val)},
        "classes": list(CLASSES),
        "palette": [list(p) for p in PALETTE],
        "ignore_index": IGNORE_INDEX,
        "class_descriptions": dict(DESCRIPTIONS),
        "void_description": VOID_DESCRIPTION,
        "groups": GROUPS,
        "pixel_counts": {
            split: {**{name: int(c[k]) for k, name in enumerate(CLASSES)}, "void": int(c[IGNORE_INDEX])}
            for split, c in counts.items()
        },
        "generator": "srcr.data.synthetic_gen (srcr synth)",
        "numpy_version": np.__version__,
        "pillow_version": PIL.__version__,
    }


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_params(n_train: int, n_val: int, size: Sequence[int], seed: int) -> tuple[int, int]:
    if not (_is_int(n_train) and _is_int(n_val)) or n_train < 1 or n_val < 1:
        raise UserError(f"synthetic dataset: n_train and n_val must be integers >= 1, "
                        f"got {n_train!r} and {n_val!r}")
    if (not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(v) for v in size)
            or min(size) < MIN_SIZE):
        raise UserError(f"synthetic dataset: size must be [H, W], integers >= {MIN_SIZE}, got {size!r}")
    if not _is_int(seed) or seed < 0:
        raise UserError(f"synthetic dataset: seed must be an integer >= 0, got {seed!r}")
    return int(size[0]), int(size[1])


def generate_dataset(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int], seed: int,
                     workers: int | None = None, progress: bool = True, replace: bool = False) -> dict:
    """Write the dataset to ``root`` atomically: everything goes into a temporary sibling folder that
    is renamed onto ``root`` only once complete. ``root`` must not exist unless ``replace``."""
    size = _check_params(n_train, n_val, size, seed)
    root = Path(root)
    workers = _default_workers() if workers is None else int(workers)
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if root.exists() and not replace:
        raise UserError(f"{root} already exists; choose another folder or replace it (srcr synth --force)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        for split in SPLIT_IDS:
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        jobs = []
        for split, n in (("train", n_train), ("val", n_val)):
            step = 16
            jobs += [(split, list(range(a, min(a + step, n)))) for a in range(0, n, step)]
        counts = {split: np.zeros(256, np.int64) for split in SPLIT_IDS}
        from tqdm import tqdm

        from ..engine.progress import is_terminal

        bar = tqdm(total=n_train + n_val, desc="synth", unit="img", file=sys.stderr,
                   disable=not (progress and is_terminal()))
        if workers == 1:
            for split, idx in jobs:
                counts[split] += _generate_chunk(str(tmp), split, idx, seed, size)
                bar.update(len(idx))
        else:
            methods = multiprocessing.get_all_start_methods()
            # fork: workers need not re-import torch (srcr/__init__); they only run numpy and PIL
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            try:
                pending = {ex.submit(_generate_chunk, str(tmp), split, idx, seed, size): (split, idx)
                           for split, idx in jobs}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        split, idx = pending.pop(fut)
                        counts[split] += fut.result()
                        bar.update(len(idx))
            finally:
                ex.shutdown(wait=True, cancel_futures=True)   # on error/Ctrl-C: don't finish the queue
        bar.close()
        meta = _meta(n_train, n_val, size, seed, counts)
        write_json(tmp / "meta.json", meta)
        _install(tmp, root, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _install(tmp: Path, root: Path, replace: bool) -> None:
    if replace and root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
        os.rename(root, old / "d")        # never a moment with a half-written root; at worst none
        os.rename(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, root)              # fails if another process installed root meanwhile


def _mismatch(meta_path: Path, key: str, found: Any, expected: Any) -> UserError:
    return UserError(
        f"{meta_path}: key {key!r} is {json.dumps(found)} but {json.dumps(expected)} was requested; "
        f"this folder holds a different synthetic dataset. Delete it (or run `srcr synth --out "
        f"{meta_path.parent} --force ...`) to regenerate, or point data.root elsewhere.")


def check_synthetic(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int], seed: int) -> dict:
    """Check that ``root`` holds exactly the requested dataset (meta.json and every file); return the meta."""
    root = Path(root)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{root} exists but has no meta.json: not a srcr synthetic dataset "
                        f"(remove it or choose another data.root)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{meta_path}: cannot read JSON ({e}); delete the folder to regenerate it") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    expected = {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "splits": {"train": int(n_train), "val": int(n_val)},
    }
    for key, want in expected.items():
        if key not in meta:
            raise UserError(f"{meta_path}: missing key {key!r} (expected {json.dumps(want)})")
        if meta[key] != want:
            raise _mismatch(meta_path, key, meta[key], want)
    for split, n in expected["splits"].items():
        want = {_png_name(i) for i in range(n)}
        for kind in ("images", "labels"):
            d = root / kind / split
            if not d.is_dir():
                raise UserError(f"{d}: missing folder of the synthetic dataset (meta.json says "
                                f"{n} {split} images); delete {root} to regenerate it")
            have = {p for p in os.listdir(d) if p.endswith(".png")}
            missing, extra = sorted(want - have), sorted(have - want)
            if missing:
                raise UserError(f"{d / missing[0]}: missing ({len(missing)} of {n} {kind} absent); "
                                f"delete {root} to regenerate it")
            if extra:
                raise UserError(f"{d / extra[0]}: unexpected file ({len(extra)} extra .png files; "
                                f"meta.json says {n}); delete {root} to regenerate it")
    return meta


def ensure_synthetic(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int], seed: int,
                     workers: int | None = None, progress: bool = True) -> Path:
    """Generate the synthetic dataset at ``root`` if it is missing; otherwise check that its
    meta.json matches the request and that its files are all there (UserError if not)."""
    root = Path(root)
    _check_params(n_train, n_val, size, seed)
    if not root.exists():
        try:
            generate_dataset(root, n_train, n_val, size, seed, workers=workers, progress=progress)
        except (OSError, UserError):
            if not root.exists():       # a genuine failure, not a concurrent process winning the race
                raise
    check_synthetic(root, n_train, n_val, size, seed)
    return root


# --------------------------------------------------------------------------------------------
# `srcr synth`

def parse_size(text: str) -> tuple[int, int]:
    """'128x256' -> (128, 256) (height x width)."""
    parts = str(text).lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        h, w = int(parts[0]), int(parts[1])
    except ValueError:
        raise UserError(f"--size: expected HxW such as 128x256, got {text!r}") from None
    if min(h, w) < MIN_SIZE:
        raise UserError(f"--size: height and width must be >= {MIN_SIZE}, got {text!r}")
    return h, w


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset folder to write (created atomically)")
    parser.add_argument("--n-train", type=int, default=400, help="training images (default 400)")
    parser.add_argument("--n-val", type=int, default=100, help="validation images (default 100)")
    parser.add_argument("--size", default="128x256", help="HxW of every image (default 128x256)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="generator processes (default min(2, CPUs)); the output does not depend on it")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing synthetic dataset at --out with different parameters")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    _check_params(args.n_train, args.n_val, size, args.seed)
    out = Path(args.out)
    progress = not args.no_progress
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()                    # an empty folder is as good as none
        else:
            try:
                meta = check_synthetic(out, args.n_train, args.n_val, size, args.seed)
            except UserError:
                if not args.force:
                    raise
                if not (out / "meta.json").is_file() or _format_of(out / "meta.json") != FORMAT:
                    raise UserError(f"{out}: refusing to replace a folder that is not a srcr synthetic "
                                    f"dataset (no meta.json with format {FORMAT!r})") from None
            else:
                print(f"{out}: already holds this dataset (seed {args.seed}, {args.n_train}+{args.n_val} "
                      f"images of {size[0]}x{size[1]}); nothing to do", file=sys.stderr)
                _print_summary(meta, None)
                return 0
    t0 = time.perf_counter()
    meta = generate_dataset(out, args.n_train, args.n_val, size, args.seed, workers=args.workers,
                            progress=progress, replace=args.force)
    _print_summary(meta, time.perf_counter() - t0, out)
    return 0


def _format_of(meta_path: Path) -> Any:
    try:
        return json.loads(meta_path.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def _print_summary(meta: dict, seconds: float | None, out: Path | None = None) -> None:
    n = meta["splits"]["train"] + meta["splits"]["val"]
    if seconds is not None:
        print(f"wrote {n} images of {meta['size'][0]}x{meta['size'][1]} to {out} in {seconds:.1f} s "
              f"({1000 * seconds / n:.1f} ms/image)")
    counts = meta.get("pixel_counts", {}).get("train")
    if counts:
        total = sum(counts.values())
        print("train pixel share: " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in counts.items()))
