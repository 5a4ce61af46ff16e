"""Rendering one image of the synthetic dataset: the scene, drawn in named steps (sky, ground,
buildings, lanes, vehicles, poles, hood, lighting) from one random stream.

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
in which workers finish. The steps run in a fixed order and each draws from the stream in a fixed
order: reordering either changes every image (tests/test_synthetic_gen.py pins a few SHA-256s).
Writing datasets and `srcr synth`: srcr.data.synthetic_gen.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

IGNORE_INDEX = 255
SPLIT_IDS = {"train": 0, "val": 1}

# How strongly the road/water identity shows: the amplitude of the asphalt grain / ripple texture
# (relative to the surface brightness), and the peak opacity range of the contact shadow. Version 2
# had 0.2 and 0.75-0.95: whether a one-minute CPU run told road from water, and so car from boat,
# then depended on the seed (mIoU 63-69 over four seeds); see docs/synthetic.md, "Version 3".
IDENTITY_TEXTURE = 0.5
SHADOW_OPACITY = (0.3, 0.5)

CLASSES = ["sky", "building", "road", "water", "grass", "window", "lane", "pole", "car", "boat"]
SKY, BUILDING, ROAD, WATER, GRASS, WINDOW, LANE, POLE, CAR, BOAT = range(len(CLASSES))
NUM_CLASSES = len(CLASSES)

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
# the scene, one drawing step at a time (the order of the steps is the order of the random draws)

def _rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]))


@dataclass
class _Canvas:
    """The image being drawn: float RGB, its label map, the coordinate grids and the random stream."""

    rng: np.random.Generator
    height: int
    width: int
    instances: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        H, W = self.height, self.width
        self.scale = H / 128.0                 # absolute sizes scale with the height; thin widths do not
        self.yy = np.arange(H, dtype=np.float32)[:, None]
        self.xx = np.arange(W, dtype=np.float32)[None, :]
        self.cols = np.arange(W, dtype=np.float64)
        self.img = np.zeros((H, W, 3), np.float32)
        self.lab = np.full((H, W), IGNORE_INDEX, np.uint8)

    def paint(self, mask, rgb, cls, ys=slice(None), xs=slice(None)) -> None:
        # mask/rgb cover the window img[ys, xs]; rgb may be anything broadcastable to it
        np.copyto(self.img[ys, xs], rgb, where=mask[..., None])
        self.lab[ys, xs][mask] = cls


@dataclass
class _Ground:
    """The ground below the horizon: band boundary curves (horizon first, image bottom last), the
    regions as (class, mask, band index) and the rows each band spans."""

    curves: list[np.ndarray]
    regions: list[tuple[int, np.ndarray, int]]
    band_rows: list[slice]


def _draw_sky(cv: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Horizon and sky: returns the horizon row per column and the sky mask."""
    rng, H, W, yy = cv.rng, cv.height, cv.width, cv.yy
    horizon = (rng.uniform(0.30, 0.50) * H + rng.uniform(-0.06, 0.06) * (cv.cols - W / 2)
               + _curve(rng, W, 0.012 * H, 6))
    horizon = np.clip(horizon, 0.18 * H, 0.62 * H).astype(np.float32)
    sky = yy < horizon[None, :]
    colour = _jitter(rng, SKY)
    t = np.clip(yy / horizon[None, :], 0, 1)
    clouds = (np.clip(_smooth(rng, H, W, (3, 6)) * 0.6 - rng.uniform(0.0, 0.7), 0, 1)
              * rng.uniform(0.3, 0.9))
    sky_rgb = ((colour * (0.8 + 0.35 * t)[..., None]) * (1 - clouds[..., None])
               + 0.92 * clouds[..., None])
    cv.paint(sky, sky_rgb, SKY)
    return horizon, sky


def _layout_ground(cv: _Canvas, horizon: np.ndarray, sky: np.ndarray) -> _Ground:
    """Ground bands (perspective: the far ones are thinner), optionally one split left/right."""
    rng, H, W, yy, cols = cv.rng, cv.height, cv.width, cv.yy, cv.cols
    k = 3 if rng.random() < 0.6 else 2
    fracs = [rng.uniform(0.2, 0.4), rng.uniform(0.55, 0.75)] if k == 3 else [rng.uniform(0.3, 0.6)]
    curves = [horizon.astype(np.float64)]
    for f in fracs:
        b = (horizon + f * (H - horizon) + rng.uniform(-0.04, 0.04) * (cols - W / 2)
             + _curve(rng, W, 0.01 * H, 5))
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
    band_rows = []
    for j in range(k):
        r0 = int(np.floor(curves[j].min()))
        band_rows.append(slice(r0, max(r0 + 1, min(H, int(np.ceil(curves[j + 1].max())) + 1))))
    regions = []
    split_band = int(rng.integers(k)) if rng.random() < 0.3 else -1
    for j in range(k):
        m = ~sky & (band == j)
        if j == split_band:
            other = [v for v in (ROAD, WATER, GRASS) if v != types[j]]
            right_type = int(other[rng.integers(2)])
            xsplit = rng.uniform(0.3, 0.7) * W + rng.uniform(-0.3, 0.3) * (yy - horizon.mean())
            right = cv.xx >= xsplit
            regions += [(types[j], m & ~right, j), (right_type, m & right, j)]
        else:
            regions.append((types[j], m, j))
    return _Ground(curves, regions, band_rows)


def _draw_ground(cv: _Canvas, ground: _Ground) -> None:
    """The texture of every ground region."""
    rng, W = cv.rng, cv.width
    for typ, m, j in ground.regions:
        ys = ground.band_rows[j]
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
                wavelength = rng.uniform(2.5, 6.0) * cv.scale
                ripples = np.sin(2 * np.pi * cv.yy[ys] / wavelength + 2.5 * _smooth(rng, h, W, (3, 6)))
                v = v + patch * IDENTITY_TEXTURE * ripples
        else:
            c = _jitter(rng, typ)
            v = (1 + 0.10 * rng.standard_normal((1, W), dtype=np.float32)
                 + 0.07 * rng.standard_normal((h, W), dtype=np.float32)
                 + 0.10 * _smooth(rng, h, W, (6, 12)))
        cv.paint(m[ys], c * v[..., None], typ, ys)


def _draw_buildings(cv: _Canvas, horizon: np.ndarray, sky: np.ndarray) -> None:
    """Buildings with window grids, in the sky region, standing on the horizon."""
    rng, W = cv.rng, cv.width
    for _ in range(int(rng.choice(6, p=[0.05, 0.1, 0.25, 0.3, 0.2, 0.1]))):
        bw = int(rng.uniform(0.1, 0.35) * W)
        x0 = int(rng.uniform(-0.1 * W, W - 0.5 * bw))
        ca, cb = max(x0, 0), min(x0 + bw, W)
        if cb - ca < 2:
            continue
        _draw_building(cv, horizon, sky, x0, bw, (ca, cb))


def _draw_building(cv: _Canvas, horizon: np.ndarray, sky: np.ndarray, x0: int, bw: int,
                   cols: tuple[int, int]) -> None:
    """One facade from column x0, bw wide (visible columns ``cols``), and its windows; everything
    is computed in the building's bounding box only (speed)."""
    rng, H, s = cv.rng, cv.height, cv.scale
    ca, cb = cols
    hz_min = float(horizon[ca:cb].min())
    hi = hz_min - 0.12 * H
    top = rng.uniform(0.06 * H, max(hi, 0.06 * H + 1))
    slope = 0.0 if rng.random() < 0.7 else rng.uniform(-0.15, 0.15)
    R = int(np.ceil(horizon[ca:cb].max())) + 1
    win = (slice(0, R), slice(ca, cb))
    yy, xx = cv.yy[:R], cv.xx[:, ca:cb]
    bmask = (yy >= top + slope * (xx - x0)) & sky[win]
    c = _jitter(rng, BUILDING)
    period = max(2, int(round(rng.uniform(3, 6) * s)))
    rows = (np.floor(yy - top) % period == 0)
    v = (1 - 0.1 * rows) * (1 + 0.05 * _smooth(rng, R, cb - ca, (4, 8))) * (1.05 - 0.1 * yy / H)
    cv.paint(bmask, c * v[..., None], BUILDING, *win)
    # windows: a regular grid below the highest roof point, whole cells only
    ww, wh = max(2, int(round(rng.uniform(5, 9) * s))), max(2, int(round(rng.uniform(6, 10) * s)))
    gx, gy = max(2, int(round(rng.uniform(5, 8) * s))), max(2, int(round(rng.uniform(5, 7) * s)))
    mx = max(2, int(round(rng.uniform(2, 5) * s)))
    wtop = int(np.ceil(max(top, top + slope * bw))) + mx
    ncols = (bw - 2 * mx + gx) // (ww + gx)
    nrows = (int(hz_min) - 2 - wtop + gy) // (wh + gy)
    if ncols < 1 or nrows < 1:
        return
    u = (xx - (x0 + mx)).astype(np.int64)
    w = (yy - wtop).astype(np.int64)
    ci, ri = u // (ww + gx), w // (wh + gy)
    inside = ((u >= 0) & (w >= 0) & (ci < ncols) & (ri < nrows)
              & (u % (ww + gx) < ww) & (w % (wh + gy) < wh))
    present = rng.random((nrows, ncols)) < 0.85
    lit = rng.random((nrows, ncols)) < 0.15
    rr, cc = np.clip(ri, 0, nrows - 1), np.clip(ci, 0, ncols - 1)
    inside &= present[rr, cc] & bmask
    c = _jitter(rng, WINDOW)
    lit_c = np.array([0.95, 0.82, 0.45], np.float32) * rng.uniform(0.8, 1.05)
    glow = (1.25 - 0.5 * (w % (wh + gy)) / wh)[..., None]       # a reflection gradient per pane
    win_rgb = np.where(lit[rr, cc][..., None], lit_c, c * glow)
    cv.paint(inside, win_rgb, WINDOW, *win)


def _draw_lanes(cv: _Canvas, ground: _Ground) -> None:
    """Lane markings following the road bands: 2-4 px thick, solid or dashed."""
    rng, s = cv.rng, cv.scale
    for typ, m, j in ground.regions:
        if typ != ROAD:
            continue
        top_c, bot_c = ground.curves[j], ground.curves[j + 1]
        thick = bot_c - top_c
        if np.median(thick) < 8:
            continue
        nl = int(rng.choice(3, p=[0.05, 0.55, 0.4]))
        ts = sorted(rng.uniform(0.25, 0.75, nl))
        last_bottom = None
        ys = ground.band_rows[j]
        yy = cv.yy[ys]
        for tt in ts:
            th = int(rng.choice([2, 3, 4], p=[0.35, 0.4, 0.25]))
            yl = np.floor(top_c + tt * thick).astype(np.float32)
            if last_bottom is not None and np.any(yl < last_bottom + 4):
                continue    # two lines this close would merge into one thick (non-thin) structure
            lmask = (yy >= yl[None, :]) & (yy < yl[None, :] + th) & m[ys]
            if rng.random() < 0.5:
                dash, gap = rng.uniform(6, 16) * s, rng.uniform(4, 12) * s
                lmask &= ((cv.cols + rng.uniform(0, dash + gap)) % (dash + gap) < dash)[None, :]
            last_bottom = yl + th
            c = _jitter(rng, LANE) if rng.random() < 0.7 else np.array([0.9, 0.75, 0.2], np.float32)
            grain = 0.95 + 0.1 * rng.random(lmask.shape, dtype=np.float32)
            cv.paint(lmask, c * grain[..., None], LANE, ys)


def _place_vehicles(cv: _Canvas, ground: _Ground) -> None:
    """Cars on road, boats on water: one placement procedure and one appearance function."""
    rng, W = cv.rng, cv.width
    shadow_rgb = np.full(3, rng.uniform(0.05, 0.15), np.float32)
    for typ, m, j in ground.regions:
        if typ not in (ROAD, WATER):
            continue
        cls = CAR if typ == ROAD else BOAT
        top_c, bot_c = ground.curves[j], ground.curves[j + 1]
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
                if _place_vehicle(cv, m, cls, top, left, h, w, shadow_rgb):
                    break


def _place_vehicle(cv: _Canvas, region: np.ndarray, cls: int, top: int, left: int, h: int,
                   w: int, shadow_rgb: np.ndarray) -> bool:
    """Draw one h x w vehicle at (top, left) if it and a 2 px margin fit inside ``region``."""
    rng, H, W, img, lab = cv.rng, cv.height, cv.width, cv.img, cv.lab
    rgb, pm = render_vehicle(rng, h, w)
    # the vehicle and a 2 px margin must lie inside its region: its surroundings are then all
    # road (or all water), the only cue that tells a car from a boat; the shadow below then dims
    # the nearest few pixels of that cue
    box = _clip_box(top - 2, left - 2, h + 4, w + 4, H, W)
    if box is None or top - 2 < 0 or top + h + 2 > H:
        return False
    (fy, fx), (py, px) = box
    if not np.all(region[fy, fx][_dilate(pm, 2)[py, px]]):
        return False
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
    cv.instances.append({"cls": cls, "top": top, "left": left, "mask": pm})
    return True


def _draw_poles(cv: _Canvas, horizon: np.ndarray) -> None:
    """Poles in front of everything: 2-4 px wide, never adjacent to each other."""
    rng, W = cv.rng, cv.width
    used: list[float] = []
    for _ in range(int(rng.choice(7, p=[0.05, 0.1, 0.2, 0.25, 0.2, 0.1, 0.1]))):
        pw = int(rng.choice([2, 3, 4], p=[0.2, 0.4, 0.4]))
        xb = rng.uniform(2, W - 5)
        if any(abs(xb - u) < 10 for u in used):
            continue
        used.append(xb)
        _draw_pole(cv, horizon, pw, xb)


def _draw_pole(cv: _Canvas, horizon: np.ndarray, pw: int, xb: float) -> None:
    """One pole pw wide at column xb, maybe tilted, maybe with a street-light arm."""
    rng, H, W = cv.rng, cv.height, cv.width
    hzb = float(horizon[int(xb)])
    yb = int(hzb + rng.uniform(0.1, 0.7) * (H - hzb))
    yt = int(rng.uniform(0.04 * H, max(hzb - 0.12 * H, 0.04 * H + 1)))
    tilt = rng.uniform(-0.05, 0.05) if rng.random() < 0.5 else 0.0
    ta = int(rng.choice([2, 3])) if rng.random() < 0.5 else 0     # a street-light arm, 2-3 px thick
    la = max(3, int(rng.uniform(4, 12) * cv.scale))
    arm_right = rng.random() < 0.5
    # bounding box: the pole's rows, its columns plus room for the arm
    ys = slice(yt, min(yb + 1, H))
    c0 = max(0, int(xb) - int(abs(tilt) * H) - la - 2)
    xs = slice(c0, min(W, int(xb) + int(abs(tilt) * H) + la + pw + 3))
    yy, xx = cv.yy[ys], cv.xx[:, xs]
    xl = np.floor(xb + tilt * (yy - yb))
    pmask = (xx >= xl) & (xx < xl + pw)
    if ta:
        xtop = float(np.floor(xb + tilt * (yt - yb)))
        a0, a1 = (xtop + pw, xtop + pw + la) if arm_right else (xtop - la, xtop)
        pmask |= (yy < yt + ta) & (xx >= a0) & (xx < a1)
    grey = rng.uniform(0.05, 0.3) if rng.random() < 0.8 else rng.uniform(0.85, 1.0)
    c = np.array([grey, grey, grey * rng.uniform(0.9, 1.15)], np.float32)
    cv.paint(pmask, (c * (1.1 - 0.25 * yy / H)[..., None]), POLE, ys, xs)


def _draw_hood(cv: _Canvas) -> None:
    """An ego-vehicle hood: a void region at the bottom of some images."""
    rng, H, W, yy = cv.rng, cv.height, cv.width, cv.yy
    if rng.random() < 0.2:
        hh, cxh, rx = rng.uniform(0.07, 0.15) * H, rng.uniform(0.3, 0.7) * W, rng.uniform(0.5, 0.9) * W
        q = np.clip(1 - ((cv.cols - cxh) / rx) ** 2, 0, 1)
        hood = yy >= (H - hh * np.sqrt(q))[None, :].astype(np.float32)
        c = np.full(3, rng.uniform(0.1, 0.3), np.float32)
        cv.img[hood] = (c * (0.8 + 0.4 * (yy / H)[..., None] * np.ones((1, W, 1), np.float32)))[hood]
        cv.lab[hood] = IGNORE_INDEX


def _light(cv: _Canvas, horizon: np.ndarray) -> np.ndarray:
    """Illumination: a global gradient, soft cast shadows across classes, a colour cast, noise;
    returns the final uint8 image."""
    rng, H, W, yy, xx, img = cv.rng, cv.height, cv.width, cv.yy, cv.xx, cv.img
    angle = rng.uniform(0, 2 * np.pi)
    illum = 1 + rng.uniform(0, 0.35) * ((xx - W / 2) * np.cos(angle) + (yy - H / 2) * np.sin(angle)) / (
        0.5 * max(H, W))
    for _ in range(int(rng.choice(3, p=[0.5, 0.3, 0.2]))):
        cx, cy = rng.uniform(0, W), rng.uniform(horizon.mean(), H)
        rx, ry = rng.uniform(0.08, 0.3) * W, rng.uniform(0.04, 0.12) * H
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        illum = illum * (1 - rng.uniform(0.2, 0.5) * np.clip((1.2 - d) / 0.4, 0, 1))
    img *= illum[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    img += rng.standard_normal((H, W, 3), dtype=np.float32) * np.float32(rng.uniform(0.01, 0.03))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def generate_sample(seed: int, split: str, index: int, size: Sequence[int],
                    return_instances: bool = False):
    """Render image ``index`` of ``split``: (image uint8 HxWx3, label uint8 HxW[, instances]).

    ``instances`` (for tests and analysis) lists every placed car/boat as a dict with ``cls``,
    ``top``, ``left`` and its ``mask`` (bool patch, before occlusion by later objects).
    """
    cv = _Canvas(_rng_for(seed, split, index), int(size[0]), int(size[1]))
    horizon, sky = _draw_sky(cv)
    ground = _layout_ground(cv, horizon, sky)
    _draw_ground(cv, ground)
    _draw_buildings(cv, horizon, sky)
    _draw_lanes(cv, ground)
    _place_vehicles(cv, ground)
    _draw_poles(cv, horizon)
    _draw_hood(cv)
    image = _light(cv, horizon)
    if return_instances:
        return image, cv.lab, cv.instances
    return image, cv.lab
