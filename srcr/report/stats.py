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
  validation images, so their image noise is shared);
- n = 1: paired image bootstrap, percentile interval; it does not cover training noise.
Resample indices depend only on (--seed, the seed list), never on the variant, so the two sides of
a difference always see the same resample.
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
        return list(self.scalars) + [f"band_mIoU@{self.band_width:g}", f"interior_mIoU@{self.band_width:g}"]

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
        raise UserError(f"--band-width {band_width:g} is not one of the trimap widths {cfg['trimap_widths']} "
                        f"of {suite.root} (per_image.npz config)")
    taus = [float(t) for t in cfg["bf_tolerances"]]
    scalars = tuple(s for s in SCALARS if not s.startswith("mBF@") or float(s[4:]) in taus)
    if 3.0 not in taus:
        raise UserError(f"{suite.root}: the per-image counts have no BF tolerance 3 (bf_tolerances {taus})")
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
    """A difference variant - baseline for every entry of the figure vector."""
    method: str
    n_seeds: int
    point: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def half_width(self) -> np.ndarray:
        return (self.hi - self.lo) / 2

    @property
    def significant(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (self.lo > 0) | (self.hi < 0)


class Statistics:
    """Point figures, resamples (cached per run and seed list) and differences for one suite."""

    def __init__(self, suite: Suite, layout: Layout, n_boot: int = 1000, seed: int = 0, progress: bool = True):
        if n_boot < 100:
            raise UserError(f"--bootstrap must be at least 100 resamples, got {n_boot}")
        self.suite, self.layout, self.B, self.seed = suite, layout, int(n_boot), int(seed)
        self.progress = progress
        self.n_images = len(suite.names)
        self._points = {(v, s): figure_vector(summarize(r.counts, r.eval_config), layout)
                        for v, runs in suite.runs.items() for s, r in runs.items()}
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
                    out[b, j] = figure_vector(summarize(r.counts, r.eval_config, index=images[b, j]), self.layout)
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
            kind = HIER if len(seeds) >= 5 else IMAGES
            if (v, seeds, kind) not in self._cache:
                jobs.append((v, seeds, kind))
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
        M = self.layout.size
        ss, dof = np.zeros(M), np.zeros(M)
        for u, w in itertools.combinations(sorted(self.suite.runs), 2):
            seeds = sorted(set(self.suite.seeds(u)) & set(self.suite.seeds(w)))
            if len(seeds) < 2:
                continue
            d = np.stack([self.point(u, s) - self.point(w, s) for s in seeds])
            ok = ~np.isnan(d).any(axis=0)
            dev = d - d.mean(axis=0)
            ss += np.where(ok, (dev ** 2).sum(axis=0), 0.0)
            dof += np.where(ok, len(seeds) - 1, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(dof > 0, ss / np.where(dof > 0, dof, 1), np.nan), dof

    @property
    def pooled_sd(self) -> tuple[float, int]:
        """Pooled seed sd of paired mIoU differences and its degrees of freedom."""
        i = self.layout.index("mIoU")
        s2, dof = self._pooled
        return float(np.sqrt(s2[i])), int(dof[i])

    # ---- differences
    def common_seeds(self, variant: str, baseline: str) -> tuple[int, ...]:
        seeds = tuple(sorted(set(self.suite.seeds(variant)) & set(self.suite.seeds(baseline))))
        if not seeds:
            raise UserError(f"{self.suite.root}: variants '{variant}' and '{baseline}' share no seed "
                            f"({self.suite.seeds(variant)} vs {self.suite.seeds(baseline)}); differences are paired by seed")
        return seeds

    def diff(self, variant: str, baseline: str) -> Diff:
        seeds = self.common_seeds(variant, baseline)
        n = len(seeds)
        point = np.mean([self.point(variant, s) - self.point(baseline, s) for s in seeds], axis=0)
        kind = HIER if n >= 5 else (POOLED if n >= 2 else IMAGES)
        draws = HIER if kind == HIER else IMAGES
        dv = self.resampled(variant, seeds, draws) - self.resampled(baseline, seeds, draws)
        with _quiet():
            d_boot = np.nanmean(dv, axis=1)  # (B, M)
            if kind == POOLED:
                from scipy.stats import t as student_t

                s2, dof = self._pooled
                var = s2 / n + np.nanvar(d_boot, axis=0, ddof=1)
                with np.errstate(invalid="ignore"):
                    q = np.where(dof > 0, student_t.ppf(0.975, np.maximum(dof, 1)), np.nan)
                half = q * np.sqrt(var)
                lo, hi = point - half, point + half
            else:
                lo, hi = np.nanpercentile(d_boot, [2.5, 97.5], axis=0)
        return Diff(kind, n, point, lo, hi)


_SHARED: "Statistics | None" = None  # the instance a forked prefetch worker reads


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
