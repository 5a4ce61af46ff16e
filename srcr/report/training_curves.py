"""Training curves of a table's variants from each run's log.jsonl: every loss term and the
learning rate against iteration, the mean over seeds with the seeds' range as a band.

A log record holds means over its log interval (srcr train, ``train.log_interval``), so a curve
point at iteration i is the mean loss of the interval ending at i. ``lr`` is the first parameter
group's, the one every schedule factor applies to alike.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .figures import plt, save, variant_colors

# log.jsonl keys that are not curves: the x axis, the speed; "lr" gets its own panel, last
NOT_TERMS = ("iteration", "images_per_s", "lr")


def curve_frame(suite, variants: list[str]) -> pd.DataFrame:
    """Long frame (variant, seed, iteration, term, value) of every numeric log value but speed."""
    rows = []
    for v in variants:
        for seed, run in suite.runs[v].items():
            for rec in run.log:
                rows += [
                    (v, seed, rec["iteration"], k, float(x))
                    for k, x in rec.items()
                    if k not in NOT_TERMS[:2]
                    and isinstance(x, (int, float))
                    and not isinstance(x, bool)
                ]
    return pd.DataFrame(rows, columns=["variant", "seed", "iteration", "term", "value"])


def curve_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, term, iteration): mean, min and max over the seeds that logged it, and n."""
    g = frame.groupby(["variant", "term", "iteration"], sort=True)["value"]
    return g.agg(mean="mean", low="min", high="max", n="count").reset_index()


def terms_of(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(terms to plot, terms left out): loss terms in log order ("loss" first as srcr train writes
    it), then "lr"; a term that is 0 in every record of every run (the aux term without an
    auxiliary head) is left out."""
    zero = frame.groupby("term", sort=False)["value"].apply(lambda x: bool((x == 0).all()))
    terms = [t for t in dict.fromkeys(frame["term"]) if t != "lr" and not zero[t]]
    lr = ["lr"] if (frame["term"] == "lr").any() else []
    return terms + lr, [t for t in zero.index if zero[t]]


def draw_curves(summary: pd.DataFrame, variants: list[str], terms: list[str], title: str):
    """One panel per term (lr on a log axis); one line per variant, its seed range as a band."""
    ncols = 2 if len(terms) == 4 else min(len(terms), 3)
    nrows = -(-len(terms) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 2.9 * nrows + 0.5), squeeze=False, layout="constrained"
    )
    colors = variant_colors(variants)
    for ax, term in zip(axes.flat, terms):
        for v in variants:
            d = summary[(summary["variant"] == v) & (summary["term"] == term)]
            if d.empty:
                continue
            ax.plot(d["iteration"], d["mean"], color=colors[v], lw=1.2, label=v, gid=f"{v}/{term}")
            ax.fill_between(d["iteration"], d["low"], d["high"], color=colors[v], alpha=0.2, lw=0)
        ax.set_title(
            "learning rate (first group)"
            if term == "lr"
            else "training loss (total)"
            if term == "loss"
            else f"loss term: {term}",
            fontsize=10,
        )
        ax.set_xlabel("iteration")
        if term == "lr":
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(variants), 4), fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def curves_figure(suite, spec: dict, stem: Path) -> list[Path]:
    """The training-curve figure of one table (its variants, every seed found)."""
    variants = list(spec["variants"])
    frame = curve_frame(suite, variants)
    seeds = sorted({s for v in variants for s in suite.runs[v]})
    terms, left_out = terms_of(frame)
    title = (
        f"{suite.name} / {spec.get('title', '')}: training curves, mean over seeds "
        f"{', '.join(map(str, seeds))} (band: their range)"
    )
    if left_out:
        title += f"\n{', '.join(left_out)}: 0 throughout, not drawn"
    return save(draw_curves(curve_summary(frame), variants, terms, title), stem)
