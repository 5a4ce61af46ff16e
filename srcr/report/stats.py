"""Differences to a baseline and their 95% intervals (docs/statistics.md).

Every figure of every resample is recomputed from summed per-image counts with
``srcr.metrics.summarize``; the figures of a run are flattened into one vector (the ``Layout``),
so one summarize call per (run, resample) serves every metric and every class.

Methods, by the number n of seeds the two variants share:
- n >= 5: hierarchical paired bootstrap (seeds with replacement, then images per drawn seed, the
  same indices for both variants), percentile interval;
- 2 <= n < 5: d +- t(0.975, dof) sqrt(s^2 / n + var_images(d)), s^2 the seed variance of paired
  differences pooled over every pair of variants of the suite, var_images from the paired image
  bootstrap with seeds fixed (one image resample shared by all seeds: the seeds score the same
  validation images, so their image noise is shared). s^2 is twice the residual mean square of the
  additive model m(v, s) = mu + alpha_v + beta_s + e, so dof is that model's residual degrees of
  freedom, (V - 1)(S - 1) for V variants x S seeds, not the sum of (n - 1) over the pairs;
- n = 1: paired image bootstrap, percentile interval; it does not cover training noise.
Resample indices depend only on (--seed, the seed list), never on the variant, so the two sides of
a difference always see the same resample.

What a difference excludes: the same method at the 90% level (5th and 95th percentiles, or
t(0.95, dof)) gives the bound B = max(|lower|, |upper|); two one-sided tests at 5% reject every
|effect| >= B. Each difference also has a two-sided p-value of zero difference by the same method,
for Holm's correction within a table (``holm``).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..metrics.summary import summarize
from .load import Suite

HIER, POOLED, IMAGES = "hierarchical", "pooled", "images"
METHOD_TEXT = {
    HIER: "hierarchical paired bootstrap over seeds and images (percentile 95% interval)",
    POOLED: "pooled seed variance of paired differences over all variant pairs + paired image bootstrap, "
    "t interval (assumes a similar seed variance for every variant)",
    IMAGES: "paired image bootstrap only (one seed): the interval does NOT cover training noise",
}
SCALARS = ("mIoU", "mBF@1", "mBF@3", "mBF@5", "mBIoU")


@dataclass
class Layout:
    """Which entry of the figure vector holds what: scalars, then per-class blocks."""

    band_width: float
    num_classes: int
    scalars: tuple[str, ...]
    blocks: tuple[str, ...] = ("IoU", "BF@3", "band_IoU", "interior_IoU")

    @property
    def names(self) -> list[str]:
        return list(self.scalars) + [
            f"band_mIoU@{self.band_width:g}",
            f"interior_mIoU@{self.band_width:g}",
        ]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def block(self, name: str) -> slice:
        start = len(self.names) + self.blocks.index(name) * self.num_classes
        return slice(start, start + self.num_classes)

    @property
    def size(self) -> int:
        return len(self.names) + len(self.blocks) * self.num_classes


def make_layout(suite: Suite, band_width: float) -> Layout:
    cfg = suite.eval_config
    widths = [float(w) for w in cfg["trimap_widths"]]
    if float(band_width) not in widths:
        raise UserError(
            f"--band-width {band_width:g} is not one of the trimap widths {cfg['trimap_widths']} "
            f"of {suite.root} (per_image.npz config)"
        )
    taus = [float(t) for t in cfg["bf_tolerances"]]
    scalars = tuple(s for s in SCALARS if not s.startswith("mBF@") or float(s[4:]) in taus)
    if 3.0 not in taus:
        raise UserError(
            f"{suite.root}: the per-image counts have no BF tolerance 3 (bf_tolerances {taus})"
        )
    if cfg.get("biou_width") is None:
        scalars = tuple(s for s in scalars if s != "mBIoU")
    return Layout(float(band_width), int(cfg["num_classes"]), scalars)


def figure_vector(s: dict, layout: Layout) -> np.ndarray:
    """The flat figure vector of one summarize() result."""
    tri = s["trimap"][next(k for k in s["trimap"] if float(k) == layout.band_width)]
    vals = [s[k] for k in layout.scalars] + [tri["band_mIoU"], tri["interior_mIoU"]]
    vals += list(s["IoU"]) + list(s["BF@3"]) + list(tri["band_IoU"]) + list(tri["interior_IoU"])
    return np.asarray(vals, np.float64)


@dataclass
class Diff:
    """A difference variant - baseline for every entry of the figure vector: point, 95% and 90%
    interval, two-sided p-value of zero difference, and the image part of its variance."""

    method: str
    n_seeds: int
    point: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    lo90: np.ndarray
    hi90: np.ndarray
    p: np.ndarray
    var_images: np.ndarray

    @property
    def half_width(self) -> np.ndarray:
        return (self.hi - self.lo) / 2

    @property
    def significant(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (self.lo > 0) | (self.hi < 0)

    @property
    def excluded(self) -> np.ndarray:
        """B with the 90% interval inside [-B, B]: two one-sided 5% tests reject |effect| >= B."""
        return np.maximum(np.abs(self.lo90), np.abs(self.hi90))


def holm(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down rejections of a family of p-values at family-wise level ``alpha``: the
    j-th smallest of the k finite p-values is rejected while every smaller one was and it is at
    most alpha / (k - j + 1). NaN p-values are never rejected and do not count in k."""
    p = np.asarray(p, np.float64)
    reject = np.zeros(p.shape, bool)
    finite = np.flatnonzero(np.isfinite(p))
    k = len(finite)
    for j, idx in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        if p[idx] > alpha / (k - j):
            break
        reject[idx] = True
    return reject


def bootstrap_p(d_boot: np.ndarray) -> np.ndarray:
    """Two-sided percentile-bootstrap p-value of zero difference, per column of (B, M) resamples:
    twice the smaller share of finite resamples on either side of zero (capped at 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.isfinite(d_boot).sum(axis=0)
        below = (d_boot <= 0).sum(axis=0) / n
        above = (d_boot >= 0).sum(axis=0) / n
        return np.minimum(1.0, 2 * np.minimum(below, above))


def pooled_paired_variance(points: dict[str, dict[int, np.ndarray]]):
    """Seed variance of paired differences pooled over every pair of variants that share at least
    two seeds, per entry of the figure vectors ``points[variant][seed]``; returns (s2, dof, design)
    with dof the residual degrees of freedom of the additive variant + seed model on the runs that
    enter (the pairs share variants: for a complete V x S design s2 is twice that model's residual
    mean square and dof = (V - 1)(S - 1)), and design the (variants, seeds) that enter per entry."""
    M = len(next(iter(next(iter(points.values())).values())))
    ss, n_pairs = np.zeros(M), np.zeros(M)
    cells: list[set] = [set() for _ in range(M)]
    for u, w in itertools.combinations(sorted(points), 2):
        seeds = sorted(set(points[u]) & set(points[w]))
        if len(seeds) < 2:
            continue
        d = np.stack([points[u][s] - points[w][s] for s in seeds])
        ok = ~np.isnan(d).any(axis=0)
        dev = d - d.mean(axis=0)
        ss += np.where(ok, (dev**2).sum(axis=0), 0.0)
        n_pairs += np.where(ok, len(seeds) - 1, 0)
        for m in np.flatnonzero(ok):
            cells[m].update((v, s) for v in (u, w) for s in seeds)
    dof_cache: dict[frozenset, int] = {}
    dof = np.array([dof_cache.setdefault(frozenset(c), additive_residual_dof(c)) for c in cells])
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(n_pairs > 0, ss / np.where(n_pairs > 0, n_pairs, 1), np.nan)
    design = [(len({v for v, _ in c}), len({s for _, s in c})) for c in cells]
    return s2, dof, design


def additive_residual_dof(cells) -> int:
    """Observations minus the rank of the design matrix of m(v, s) = mu + alpha_v + beta_s over
    the (variant, seed) cells: (V - 1)(S - 1) for a complete design."""
    cells = sorted(cells)
    if not cells:
        return 0
    vs = sorted({v for v, _ in cells})
    ss = sorted({s for _, s in cells})
    X = np.zeros((len(cells), 1 + len(vs) + len(ss)))
    for r, (v, s) in enumerate(cells):
        X[r, [0, 1 + vs.index(v), 1 + len(vs) + ss.index(s)]] = 1
    return len(cells) - int(np.linalg.matrix_rank(X))


class Statistics:
    """Point figures, resamples (cached per run and seed list) and differences for one suite."""

    def __init__(
        self, suite: Suite, layout: Layout, n_boot: int = 1000, seed: int = 0, progress: bool = True
    ):
        if n_boot < 100:
            raise UserError(f"--bootstrap must be at least 100 resamples, got {n_boot}")
        self.suite, self.layout, self.B, self.seed = suite, layout, int(n_boot), int(seed)
        self.progress = progress
        self.n_images = len(suite.names)
        self._points = {
            (v, s): figure_vector(summarize(r.counts, r.eval_config), layout)
            for v, runs in suite.runs.items()
            for s, r in runs.items()
        }
        self._cache: dict = {}
        self._pooled = self._pooled_seed_variance()

    # ---- point figures
    def point(self, variant: str, seed: int) -> np.ndarray:
        return self._points[(variant, seed)]

    def seed_matrix(self, variant: str) -> np.ndarray:
        """(n_seeds, M) figure vectors of the variant's seeds."""
        return np.stack([self.point(variant, s) for s in self.suite.seeds(variant)])

    def mean_sd(self, variant: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.seed_matrix(variant)
        with np.errstate(invalid="ignore"), _quiet():
            sd = np.nanstd(m, axis=0, ddof=1) if len(m) > 1 else np.full(m.shape[1], np.nan)
            return np.nanmean(m, axis=0), sd

    # ---- resampling
    def _draws(self, seeds: tuple[int, ...], kind: str):
        key = ("draws", seeds, kind)
        if key not in self._cache:
            rng = np.random.default_rng([self.seed, 0 if kind == HIER else 1, len(seeds), *seeds])
            n, N = len(seeds), self.n_images
            if kind == HIER:
                seed_pos = rng.integers(0, n, size=(self.B, n))
                images = rng.integers(0, N, size=(self.B, n, N))
            else:  # one image resample per b, shared by every seed
                seed_pos = np.broadcast_to(np.arange(n), (self.B, n))
                images = np.broadcast_to(rng.integers(0, N, size=(self.B, 1, N)), (self.B, n, N))
            self._cache[key] = (seed_pos, images)
        return self._cache[key]

    def resampled(self, variant: str, seeds: tuple[int, ...], kind: str) -> np.ndarray:
        """(B, n, M) figure vectors of ``variant`` on the resamples of ``seeds``."""
        key = (variant, seeds, kind)
        if key not in self._cache:
            seed_pos, images = self._draws(seeds, kind)
            runs = [self.suite.runs[variant][s] for s in seeds]
            out = np.empty((self.B, len(seeds), self.layout.size))
            bar = _bar(self.B, f"bootstrap {self.suite.name}/{variant}", self.progress)
            for b in range(self.B):
                for j in range(len(seeds)):
                    r = runs[seed_pos[b, j]]
                    out[b, j] = figure_vector(
                        summarize(r.counts, r.eval_config, index=images[b, j]), self.layout
                    )
                bar.update(1)
            bar.close()
            self._cache[key] = out
        return self._cache[key]

    def prefetch(self, workers: int) -> None:
        """Compute every variant's resamples (all its seeds) in ``workers`` processes up front; the
        values are those :meth:`resampled` computes one at a time."""
        jobs = []
        for v in self.suite.runs:
            seeds = tuple(self.suite.seeds(v))
            kinds = (HIER, IMAGES) if len(seeds) >= 5 else (IMAGES,)  # IMAGES: the image part
            jobs += [(v, seeds, k) for k in kinds if (v, seeds, k) not in self._cache]
        if workers <= 1 or len(jobs) < 2:
            return
        from ..utils.parallel import fork_map

        global _SHARED
        _SHARED = self  # the forked workers read it from here
        try:
            for job, arr in zip(jobs, fork_map(_resample_job, jobs, workers)):
                self._cache[job] = arr
        finally:
            _SHARED = None

    # ---- pooled seed variance of paired differences (2 <= n < 5)
    def _pooled_seed_variance(self):
        return pooled_paired_variance(
            {v: {s: self.point(v, s) for s in runs} for v, runs in self.suite.runs.items()}
        )

    @property
    def pooled_sd(self) -> tuple[float, int]:
        """Pooled seed sd of paired mIoU differences and its degrees of freedom."""
        i = self.layout.index("mIoU")
        s2, dof, _ = self._pooled
        return float(np.sqrt(s2[i])), int(dof[i])

    @property
    def pooled_design(self) -> tuple[int, int]:
        """(variants, seeds) of the runs that enter the pooled mIoU variance."""
        return self._pooled[2][self.layout.index("mIoU")]

    # ---- differences
    def common_seeds(self, variant: str, baseline: str) -> tuple[int, ...]:
        seeds = tuple(sorted(set(self.suite.seeds(variant)) & set(self.suite.seeds(baseline))))
        if not seeds:
            raise UserError(
                f"{self.suite.root}: variants '{variant}' and '{baseline}' share no seed "
                f"({self.suite.seeds(variant)} vs {self.suite.seeds(baseline)}); differences are paired by seed"
            )
        return seeds

    def image_variance(self, variant: str, baseline: str) -> np.ndarray:
        """Variance of the difference over paired image resamples, seeds fixed (the image part)."""
        seeds = self.common_seeds(variant, baseline)
        dv = self.resampled(variant, seeds, IMAGES) - self.resampled(baseline, seeds, IMAGES)
        with _quiet():
            return np.nanvar(np.nanmean(dv, axis=1), axis=0, ddof=1)

    def diff(self, variant: str, baseline: str) -> Diff:
        seeds = self.common_seeds(variant, baseline)
        n = len(seeds)
        point = np.mean([self.point(variant, s) - self.point(baseline, s) for s in seeds], axis=0)
        kind = HIER if n >= 5 else (POOLED if n >= 2 else IMAGES)
        draws = HIER if kind == HIER else IMAGES
        dv = self.resampled(variant, seeds, draws) - self.resampled(baseline, seeds, draws)
        with _quiet():
            d_boot = np.nanmean(dv, axis=1)  # (B, M)
            if kind == HIER:
                v_img = self.image_variance(variant, baseline)
            else:
                v_img = np.nanvar(d_boot, axis=0, ddof=1)
            if kind == POOLED:
                s2, dof, _ = self._pooled
                lo, hi, lo90, hi90, p = _t_interval(point, s2 / n + v_img, dof)
            else:
                lo, hi, lo90, hi90 = np.nanpercentile(d_boot, [2.5, 97.5, 5, 95], axis=0)
                p = bootstrap_p(d_boot)
        return Diff(kind, n, point, lo, hi, lo90, hi90, p, v_img)


def _t_interval(point: np.ndarray, var: np.ndarray, dof: np.ndarray):
    """95% and 90% t intervals and the two-sided p-value of zero, per entry."""
    from scipy.stats import t as student_t

    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.maximum(dof, 1)
        q95 = np.where(dof > 0, student_t.ppf(0.975, df), np.nan)
        q90 = np.where(dof > 0, student_t.ppf(0.95, df), np.nan)
        se = np.sqrt(var)
        # a zero standard error (a variant identical to its baseline): p = 1 at a zero point
        z = np.where(
            se > 0, np.abs(point) / np.where(se > 0, se, 1), np.where(point == 0, 0.0, np.inf)
        )
        p = np.where(dof > 0, 2 * student_t.sf(z, df), np.nan)
    return point - q95 * se, point + q95 * se, point - q90 * se, point + q90 * se, p


_SHARED: Statistics | None = None  # the instance a forked prefetch worker reads


def _resample_job(job: tuple) -> np.ndarray:
    st = _SHARED
    st.progress = False
    return st.resampled(*job)


class _quiet:
    """Silence numpy's all-NaN slice warnings: a class absent from a resample is NaN by design."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
