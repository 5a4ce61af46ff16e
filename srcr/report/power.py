"""Seeds, interval widths and power of the paired comparisons of a suite (docs/statistics.md,
"Planning seeds"), from the pooled paired seed variance and the image part of a pilot.

A difference over n seeds has variance sigma2 / n + v_img: sigma2 the pooled seed variance of
paired differences, v_img the variance the finite validation set adds (the same images for every
seed, so it does not shrink with n). Its t statistic has the residual degrees of freedom of the
additive variant + seed model of the whole suite, (V - 1)(n - 1) for V variants: the pooled
variance comes from every variant, not from the two compared.
"""

from __future__ import annotations

import math

PLAN_SEEDS = (2, 3, 4, 6, 8)  # the seed counts whose half-width `srcr plan` prints
MAX_SEEDS = 1000  # beyond this, report "not reachable" (the image part limits)


def dof(n_variants: int, n_seeds: int) -> int:
    """Residual degrees of freedom of a complete variants x seeds block design."""
    return (int(n_variants) - 1) * (int(n_seeds) - 1)


def _se(sigma2: float, v_img: float, n: int) -> float:
    return math.sqrt(sigma2 / n + v_img)


def half_width(sigma2: float, v_img: float, n: int, n_variants: int, level: float = 0.95) -> float:
    """Half-width of the ``level`` interval of a paired difference over ``n`` seeds."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof(n_variants, n)) * _se(sigma2, v_img, n))


def power(
    effect: float, sigma2: float, v_img: float, n: int, n_variants: int, alpha: float = 0.05
) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` to detect a true difference
    ``effect`` over ``n`` seeds: P(|T| > t(1 - alpha/2)) with T noncentral t, noncentrality
    effect / se."""
    from scipy.stats import nct, norm, t

    df = dof(n_variants, n)
    crit = t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / _se(sigma2, v_img, n)
    upper, lower = nct.sf(crit, df, nc), nct.cdf(-crit, df, nc)
    # scipy's noncentral t returns NaN far in a tail (noncentrality ~30): there the tail is ~0
    upper = norm.sf(crit - nc) if math.isnan(upper) else upper
    return float(upper + (0.0 if math.isnan(lower) else lower))


def seeds_needed(
    effect: float,
    sigma2: float,
    v_img: float,
    n_variants: int,
    target: float = 0.8,
    alpha: float = 0.05,
) -> int | None:
    """The smallest n >= 2 whose power reaches ``target``; None if no n up to MAX_SEEDS does
    (the image part alone keeps the noncentrality below what the power needs)."""
    return _smallest(lambda n: power(effect, sigma2, v_img, n, n_variants, alpha) >= target)


def seeds_for_half_width(width: float, sigma2: float, v_img: float, n_variants: int) -> int | None:
    """The smallest n >= 2 whose 95% half-width is at most ``width`` (None: not up to MAX_SEEDS)."""
    return _smallest(lambda n: half_width(sigma2, v_img, n, n_variants) <= width)


def _smallest(ok) -> int | None:
    """Smallest n in 2..MAX_SEEDS with ok(n), for ok monotone in n: doubling, then bisection (the
    noncentral t is slow at large degrees of freedom, so large n are tried only when needed)."""
    hi = 2
    while not ok(hi):
        if hi >= MAX_SEEDS:
            return None
        hi = min(2 * hi, MAX_SEEDS)
    lo = hi // 2 + 1 if hi > 2 else 2  # ok(hi // 2) was false
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def seeds_text(n: int | None) -> str:
    return f"> {MAX_SEEDS} (the image part alone is too wide)" if n is None else str(n)
