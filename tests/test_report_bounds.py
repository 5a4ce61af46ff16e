"""What the tables state beyond the 95% interval: honest degrees of freedom of the pooled seed
variance, the effect each difference excludes (two one-sided tests), Holm's correction, and the
seeds the observed spread would need."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_fixtures import make_tree
from scipy.stats import t as student_t

from srcr.cli import main
from srcr.report import power as pw
from srcr.report.cli import make_report
from srcr.report.load import load_grid, load_suite
from srcr.report.stats import (
    HIER,
    IMAGES,
    POOLED,
    Diff,
    Statistics,
    additive_residual_dof,
    holm,
    make_layout,
    pooled_paired_variance,
)
from srcr.report.tables import marks, tex_escape


def _stats(tmp_path, seeds, n_boot=100):
    results, grid_path = make_tree(tmp_path, seeds=seeds)
    suite = load_suite(results, load_grid(grid_path))
    return Statistics(suite, make_layout(suite, 4), n_boot, seed=0, progress=False)


def _planted(V=6, S=4, seed=3):
    """m(v, s) = mu + alpha_v + beta_s + e, two entries per run (the second with another noise)."""
    rng = np.random.default_rng(seed)
    alpha, beta = rng.normal(0, 2, V), rng.normal(0, 1, S)
    e = rng.normal(0, 0.3, (V, S, 2))
    m = 70 + alpha[:, None, None] + beta[None, :, None] + e
    return m, {f"v{v}": {s: m[v, s] for s in range(S)} for v in range(V)}


def test_pooled_variance_is_twice_the_residual_mean_square_of_the_additive_model():
    V, S = 6, 4
    m, points = _planted(V, S)
    s2, dof, design = pooled_paired_variance(points)
    # closed form of the randomised complete block: m - row mean - column mean + grand mean
    r = m - m.mean(1, keepdims=True) - m.mean(0, keepdims=True) + m.mean((0, 1), keepdims=True)
    mse = (r**2).sum((0, 1)) / ((V - 1) * (S - 1))
    np.testing.assert_allclose(s2, 2 * mse, rtol=1e-10)
    assert list(dof) == [(V - 1) * (S - 1)] * 2 and design == [(V, S)] * 2
    # not the pairs' sum of (n - 1), which counts every run V - 1 times
    assert dof[0] != V * (V - 1) // 2 * (S - 1)


def test_residual_dof_of_an_incomplete_design_is_observations_minus_parameters():
    cells = {(v, s) for v in range(5) for s in range(4)} - {(0, 3)}
    assert additive_residual_dof(cells) == 19 - (1 + 4 + 3)
    assert additive_residual_dof({(v, s) for v in range(17) for s in range(4)}) == 48
    # a run whose entry is NaN takes the pairs it is in out of that entry only
    _, points = _planted(4, 3)
    points["v0"][2] = np.array([np.nan, points["v0"][2][1]])
    _, dof, design = pooled_paired_variance(points)
    assert dof[1] == 3 * 2 and design[1] == (4, 3)
    assert design[0] == (3, 3) and dof[0] == 2 * 2


def test_pooled_interval_uses_the_block_design_dof(tmp_path):
    st = _stats(tmp_path, (0, 1, 2))
    i = st.layout.index("mIoU")
    sd, dof = st.pooled_sd
    assert dof == (4 - 1) * (3 - 1) and st.pooled_design == (4, 3)
    d = st.diff("better", "base")
    se = np.sqrt(sd**2 / 3 + d.var_images[i])
    assert d.method == POOLED
    assert d.hi[i] - d.point[i] == pytest.approx(student_t.ppf(0.975, 6) * se)
    assert d.hi90[i] - d.point[i] == pytest.approx(student_t.ppf(0.95, 6) * se)
    assert d.p[i] == pytest.approx(2 * student_t.sf(d.point[i] / se, 6))


@pytest.mark.parametrize(
    "seeds,method", [((0, 1, 2, 3, 4), HIER), ((0, 1), POOLED), ((0,), IMAGES)]
)
def test_excluded_bound_is_the_90_percent_interval(tmp_path, seeds, method):
    st = _stats(tmp_path, seeds)
    i = st.layout.index("mIoU")
    for v in ("better", "same"):
        d = st.diff(v, "base")
        assert d.method == method
        assert d.lo[i] <= d.lo90[i] <= d.point[i] <= d.hi90[i] <= d.hi[i]
        assert d.excluded[i] == max(abs(d.lo90[i]), abs(d.hi90[i]))
    same, better = st.diff("same", "base"), st.diff("better", "base")
    assert same.p[i] == 1 and better.p[i] < 0.05 and better.significant[i]
    if (
        method != POOLED
    ):  # a percentile interval: the 5th and 95th percentiles of the same resamples
        d_boot = np.nanmean(
            st.resampled("better", seeds, HIER if method == HIER else IMAGES)
            - st.resampled("base", seeds, HIER if method == HIER else IMAGES),
            axis=1,
        )[:, i]
        np.testing.assert_allclose([better.lo90[i], better.hi90[i]], np.percentile(d_boot, [5, 95]))


def test_holm_known_answer():
    np.testing.assert_array_equal(holm([0.01, 0.04, 0.03, 0.005]), [True, False, False, True])
    np.testing.assert_array_equal(holm([np.nan, 0.01, 0.02]), [False, True, True])  # k = 2
    np.testing.assert_array_equal(holm([0.2, 0.001]), [False, True])


def test_holm_marks_can_remove_an_unadjusted_significance():
    def diff(p, lo):
        a = np.array
        return Diff(POOLED, 2, a([1.0]), a([lo]), a([2.0]), a([lo]), a([2.0]), a([p]), a([0.0]))

    diffs = [diff(0.03, 0.1), diff(0.04, 0.05)]
    assert marks(diffs, 0, None) == [True, True]
    assert marks(diffs, 0, "holm") == [False, False]  # 0.03 > 0.05 / 2


def test_tables_state_what_an_ns_row_excludes_and_the_seeds_for_half_a_point(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0, 1))
    out = tmp_path / "reports"
    make_report([results], grid, out, n_boot=100, progress=False, figures=False)
    tabs = out / "synthetic" / "tables"
    df = pd.read_csv(tabs / "main.csv").set_index("variant")
    same = df.loc["same"]
    assert not same["d_mIoU_significant"] and "d_mIoU_significant_holm" not in df.columns
    assert same["d_mIoU_excluded"] == pytest.approx(
        max(abs(same["d_mIoU_lo90"]), abs(same["d_mIoU_hi90"]))
    )
    bound = f"{same['d_mIoU_excluded']:.2f}"
    md = (tabs / "main.md").read_text()
    assert f"n.s.; \\|Δ\\| ≥ {bound} excluded" in md  # the pipes escaped inside a Markdown cell
    assert "not corrected for multiplicity" in md and "3 degrees of freedom" in md
    tex = (tabs / "main.tex").read_text()
    assert rf"n.s.; $|\Delta|$ $\geq$ {bound} excluded" in tex
    assert tex_escape("a|b") == r"a\textbar{}b"
    # the seeds the observed spread needs for a ±0.5 interval, from the pooled sd and image part
    st = Statistics(
        load_suite(results, load_grid(grid)),
        make_layout(load_suite(results, load_grid(grid)), 4),
        100,
        seed=0,
        progress=False,
    )
    i = st.layout.index("mIoU")
    v_img = np.median([st.diff(v, "base").var_images[i] for v in ("better", "same")])
    n = pw.seeds_for_half_width(0.5, st.pooled_sd[0] ** 2, v_img, 4)
    assert f"a 95% interval of ±0.5 mIoU needs {n} seeds" in md
    assert (
        pw.half_width(st.pooled_sd[0] ** 2, v_img, n, 4)
        <= 0.5
        < pw.half_width(st.pooled_sd[0] ** 2, v_img, n - 1, 4)
    )


def test_report_adjust_holm_from_the_command_line(tmp_path, capsys):
    results, grid = make_tree(tmp_path, seeds=(0, 1))
    out = tmp_path / "reports"
    assert (
        main(
            [
                "report",
                "--results",
                str(results),
                "--grid",
                str(grid),
                "--out",
                str(out),
                "--bootstrap",
                "100",
                "--no-progress",
                "--adjust",
                "holm",
                "--tables",
                "main",
            ]
        )
        == 0
    )
    df = pd.read_csv(out / "synthetic" / "tables" / "main.csv").set_index("variant")
    assert (
        df.loc["better", "d_mIoU_significant_holm"]
        and not df.loc["same", "d_mIoU_significant_holm"]
    )
    assert (
        df["d_mIoU_significant_holm"].dropna() == holm(df["d_mIoU_p"].dropna().to_numpy())
    ).all()
    assert "after Holm's correction" in (out / "synthetic" / "report.md").read_text()
    with pytest.raises(SystemExit):
        main(
            [
                "report",
                "--results",
                str(results),
                "--grid",
                str(grid),
                "--out",
                str(out),
                "--adjust",
                "bonferroni",
            ]
        )
    assert "invalid choice: 'bonferroni'" in capsys.readouterr().err


def test_one_seed_tables_say_the_seed_spread_is_unknown(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0,))
    out = tmp_path / "reports"
    make_report([results], grid, out, tables=["main"], n_boot=100, progress=False, figures=False)
    md = (out / "synthetic" / "tables" / "main.md").read_text()
    assert "seed spread is not measured" in md and "does NOT cover training noise" in md
