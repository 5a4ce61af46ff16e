"""`srcr plan` and the power arithmetic behind it: seeds for a given effect and power, half-widths,
and the refusals of a pilot that cannot answer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from report_fixtures import make_tree
from scipy import integrate
from scipy.stats import chi2, norm
from scipy.stats import t as student_t

from srcr.cli import main
from srcr.errors import UserError
from srcr.report import power as pw
from srcr.report.load import load_grid, load_suite
from srcr.report.seed_plan import plan_tables
from srcr.report.stats import Statistics, make_layout


def power_by_integration(effect, sigma2, v_img, n, V, alpha=0.05):
    """Independent of scipy's noncentral t: T = (Z + lam) / sqrt(X / nu), X ~ chi2(nu), so
    P(|T| > c) = E_X[Phi(lam - c sqrt(X / nu)) + Phi(-lam - c sqrt(X / nu))]."""
    nu = (V - 1) * (n - 1)
    c = student_t.ppf(1 - alpha / 2, nu)
    lam = effect / math.sqrt(sigma2 / n + v_img)

    def g(u):  # X = the u-quantile of chi2(nu): an integral over (0, 1) whatever nu is
        r = c * math.sqrt(chi2.ppf(u, nu) / nu)
        return norm.cdf(lam - r) + norm.cdf(-lam - r)

    return integrate.quad(g, 0, 1, limit=200)[0]


def is_smallest(n, effect, sigma2, v_img, V, target=0.8, alpha=0.05):
    """n reaches the power and n - 1 does not (power grows with n)."""
    reaches = power_by_integration(effect, sigma2, v_img, n, V, alpha) >= target
    return reaches and (
        n == 2 or power_by_integration(effect, sigma2, v_img, n - 1, V, alpha) < target
    )


@pytest.mark.parametrize("dz,n", [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_paired_t_test_seeds_match_the_textbook(dz, n):
    # two variants, no image part: the plain paired t-test (Cohen's tables, G*Power: dz 0.5 -> 34)
    assert pw.seeds_needed(dz, 1.0, 0.0, 2) == n
    assert pw.power(dz, 1.0, 0.0, n, 2) >= 0.8 > pw.power(dz, 1.0, 0.0, n - 1, 2)


@pytest.mark.parametrize(
    "sd,v_img,V,effect,target",
    [
        (0.34, 0.0, 17, 0.5, 0.8),
        (0.34, 0.004, 17, 0.3, 0.9),
        (0.6, 0.01, 5, 0.5, 0.8),
        (1.0, 0.0, 2, 0.5, 0.8),
    ],
)
def test_seeds_needed_equal_an_independent_power_formula(sd, v_img, V, effect, target):
    n = pw.seeds_needed(effect, sd**2, v_img, V, target)
    assert is_smallest(n, effect, sd**2, v_img, V, target)
    for k in (2, 4):
        assert pw.power(effect, sd**2, v_img, k, V) == pytest.approx(
            power_by_integration(effect, sd**2, v_img, k, V), abs=1e-6
        )


def test_half_width_and_unreachable_effect():
    for n in pw.PLAN_SEEDS:
        hw = student_t.ppf(0.975, 16 * (n - 1)) * math.sqrt(0.34**2 / n + 0.002)
        assert pw.half_width(0.34**2, 0.002, n, 17) == pytest.approx(hw)
    n = pw.seeds_for_half_width(0.3, 0.34**2, 0.002, 17)
    assert pw.half_width(0.34**2, 0.002, n, 17) <= 0.3 < pw.half_width(0.34**2, 0.002, n - 1, 17)
    # an image part of sd 0.3 alone: Δ / 0.3 < 2.8, no seed count reaches 80% power
    assert pw.seeds_needed(0.5, 0.1, 0.09, 17) is None and "image part" in pw.seeds_text(None)


def test_plan_of_a_pilot_uses_its_pooled_sd_and_image_part(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0, 1))
    plans = {p.table: p for p in plan_tables(results, grid, None, 0.5, 0.8, 0.05, n_boot=100)}
    suite = load_suite(results, load_grid(grid))
    st = Statistics(suite, make_layout(suite, 4), 100, seed=0, progress=False)
    i = st.layout.index("mIoU")
    sd = st.pooled_sd[0]
    v_img = np.median([st.image_variance(v, "base")[i] for v in ("better", "same")])
    main_plan = plans["main"]
    assert main_plan.seed_sd == pytest.approx(sd) and main_plan.image_sd == pytest.approx(
        math.sqrt(v_img)
    )
    assert main_plan.n_variants == 4 and main_plan.pilot_seeds == 2 and main_plan.comparisons == 2
    assert is_smallest(main_plan.seeds_needed, 0.5, sd**2, v_img, 4)
    assert main_plan.half_widths[4] == pytest.approx(
        student_t.ppf(0.975, 9) * math.sqrt(sd**2 / 4 + v_img)
    )
    # the 4-seed half-width is the interval a 4-seed suite with this spread would report
    assert list(main_plan.half_widths) == [2, 3, 4, 6, 8]


def test_plan_refuses_a_one_seed_pilot_and_a_pilot_of_another_grid(tmp_path, capsys):
    results, grid = make_tree(tmp_path / "one", seeds=(0,))
    with pytest.raises(UserError, match=r"only one seed of: .*seeds=\[0,1\]") as e:
        plan_tables(results, grid, None, 0.5, 0.8, 0.05, n_boot=100)
    assert all(f"{v} (seed 0)" in str(e.value) for v in ("base", "better", "same", "offs"))
    assert main(["plan", "--pilot", str(results), "--grid", str(grid), "--no-progress"]) == 2
    assert "srcr plan: error:" in capsys.readouterr().err
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump({"name": "x", "base_config": "config/default.yaml", "seeds": [0]})
    )
    assert main(["plan", "--pilot", str(results), "--suite", str(suite)]) == 2
    assert "suite config key 'tables' is missing" in capsys.readouterr().err
    other, grid2 = make_tree(tmp_path / "other", seeds=(0, 1), variants=["base", "better"])
    with pytest.raises(UserError, match="no runs of variant\\(s\\) offs, same"):
        plan_tables(other, grid2, None, 0.5, 0.8, 0.05, n_boot=100)
    with pytest.raises(UserError, match="--power must lie strictly between 0 and 1"):
        plan_tables(other, grid2, None, 0.5, 1.5, 0.05, n_boot=100)


def test_plan_command_with_a_suite_prints_seeds_and_cost(tmp_path, capsys):
    results, grid = make_tree(tmp_path, seeds=(0, 1))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "pilot",
                "base_config": "config/default.yaml",
                "grid": str(grid),
                "tables": ["main"],
                "seeds": [0],
            }
        )
    )
    out = tmp_path / "plan.json"
    assert (
        main(
            [
                "plan",
                "--pilot",
                str(results),
                "--suite",
                str(suite),
                "--bootstrap",
                "100",
                "--no-progress",
                "--effect",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    plan = json.loads(out.read_text())
    (main_plan,) = plan["tables"]
    assert main_plan["table"] == "main" and main_plan["n_variants"] == 3  # V of the planned suite
    assert f"| {main_plan['seeds_needed']} " in text and "seeds for Δ 1 at power 0.8" in text
    cost = plan["cost"]
    assert cost["seeds"] == main_plan["seeds_needed"] and cost["train_pflops_per_seed"] > 0
    assert cost["train_pflops"] == pytest.approx(cost["seeds"] * cost["train_pflops_per_seed"])
    assert "PFLOPs of training per seed" in text and cost["gpu_hours"] is None  # nothing measured
    # a measured rate (srcr cost's --images-per-second) turns the FLOPs into GPU-hours
    args = [
        "plan",
        "--pilot",
        str(results),
        "--suite",
        str(suite),
        "--bootstrap",
        "100",
        "--no-progress",
        "--effect",
        "1",
        "--json",
        str(out),
        "--images-per-second",
        "4",
        "--reference",
        "config/default.yaml",
    ]
    assert main(args) == 0
    measured = json.loads(out.read_text())["cost"]
    assert measured["train_pflops"] == pytest.approx(cost["train_pflops"])
    assert measured["gpu_hours"] is not None and measured["gpu_hours"] > 0


def test_suite_cost_at_the_seeds_needed(monkeypatch):
    from types import SimpleNamespace

    from srcr.report.seed_plan import TablePlan, suite_cost
    from srcr.suite import cost

    pflops = {"a": 2.0, "b": 3.0}
    monkeypatch.setattr(cost, "variant_cost", lambda plan, v: {"train_pflops_per_run": pflops[v]})
    plan = SimpleNamespace(name="s", variants=("a", "b"))

    def table(n):
        return TablePlan("t", 1, 2, 2, 0.3, 0.0, n, {})

    c = suite_cost(plan, [table(3), table(7)], flops_per_s=1e15 / 3600)  # 1 GPU-hour per PFLOP
    assert c["seeds"] == 7 and c["train_pflops_per_seed"] == 5.0 and c["train_pflops"] == 35.0
    assert c["gpu_hours"] == pytest.approx(35.0) and "35 GPU-hours" in c["text"]
    c = suite_cost(plan, [table(3), table(None)])
    assert c["seeds"] is None and c["gpu_hours"] is None and "No seed count" in c["text"]
    assert suite_cost(plan, [table(4)])["gpu_hours"] is None
