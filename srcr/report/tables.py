"""Ablation tables: one DataFrame per (suite, table), written as Markdown, LaTeX (booktabs) and CSV,
and cross-dataset tables with one column block per suite."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError
from .load import Suite, provenance
from .offsets import PRIMARY, STEPS
from .paper import EXTRA_EVAL_DIRS, REPORTED_NOTES, eval_mode, reported_miou
from .stats import METHOD_TEXT, Statistics, holm

DIFF_METRICS = ("mIoU", "mBF@3")  # differences shown in Markdown / LaTeX (all are in the CSV)


@dataclass
class Table:
    name: str
    suite: str
    title: str
    csv: pd.DataFrame  # every number
    shown: pd.DataFrame  # formatted cells for Markdown / LaTeX
    notes: list[str] = field(default_factory=list)
    sdd: float = float("nan")  # smallest detectable mIoU difference (median half-width)


def _num(x: float, digits: int = 2, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _mean_sd(mean: float, sd: float, n: int) -> str:
    return _num(mean) if n < 2 else f"{_num(mean)} ± {_num(sd)}"


def _diff_cell(d, i: int, significant: bool | None = None) -> str:
    """``significant``: the mark after a multiplicity correction (default: the 95% interval's)."""
    sig = bool(d.significant[i]) if significant is None else significant
    return _diff_text(d.point[i], d.lo[i], d.hi[i], sig, d.excluded[i])


def _diff_text(point: float, lo: float, hi: float, significant: bool, excluded: float) -> str:
    mark = "" if significant else f" n.s.; |Δ| ≥ {_num(excluded)} excluded"
    return f"{_num(point, sign=True)} [{_num(lo, sign=True)}, {_num(hi, sign=True)}]{mark}"


def marks(diffs: list, i: int, adjust: str | None) -> list[bool]:
    """Significance of entry ``i`` of a table's differences: the 95% interval excludes zero, or,
    with ``adjust="holm"``, Holm's correction over the table's comparisons at 5%."""
    if adjust is None:
        return [bool(d.significant[i]) for d in diffs]
    if adjust != "holm":
        raise ValueError(f"unknown adjustment {adjust!r}")
    return [bool(r) for r in holm(np.array([d.p[i] for d in diffs]))]


def diff_columns(d, m: str, i: int, holm_mark: bool | None) -> dict:
    """The CSV columns of one metric's difference (``holm_mark`` only with --adjust holm)."""
    cols = {
        f"d_{m}": d.point[i],
        f"d_{m}_lo": d.lo[i],
        f"d_{m}_hi": d.hi[i],
        f"d_{m}_significant": bool(d.significant[i]),
        f"d_{m}_p": d.p[i],
        f"d_{m}_lo90": d.lo90[i],
        f"d_{m}_hi90": d.hi90[i],
        f"d_{m}_excluded": d.excluded[i],
    }
    if holm_mark is not None:
        cols[f"d_{m}_significant_holm"] = holm_mark
    return cols


def build_table(
    stats: Statistics, name: str, spec: dict, correctness: dict, adjust: str | None = None
) -> Table:
    """``correctness``: variant -> {(step, kind): (learned, zero, n)} for runs with offsets;
    ``adjust``: None (significance of each 95% interval) or "holm" (per metric within the table)."""
    suite, lay = stats.suite, stats.layout
    base = spec["baseline"]
    bw = f"{lay.band_width:g}"
    has_oc = any(v in correctness for v in spec["variants"])
    zero_ref = next((correctness[v] for v in spec["variants"] if v in correctness), None)
    dataset = suite.dataset.get("name", suite.name)
    diffs = {v: stats.diff(v, base) for v in spec["variants"] if v != base}
    sig = {
        m: dict(zip(diffs, marks(list(diffs.values()), lay.index(m), adjust))) for m in lay.names
    }
    rows, shown, methods, halves = [], [], set(), []
    for v in spec["variants"]:
        mean, sd = stats.mean_sd(v)
        seeds = suite.seeds(v)
        fl = suite.flops[v]
        row = {
            "table": name,
            "suite": suite.name,
            "dataset": dataset,
            "variant": v,
            "description": suite.grid.variants[v].get("description", ""),
            "is_baseline": v == base,
            "n_seeds": len(seeds),
            "seeds": " ".join(map(str, seeds)),
            "n_images": stats.n_images,
            "gflops": float(fl["gflops"]),
            "params": int(fl["params"]),
        }
        d = diffs.get(v)
        if d is not None:
            methods.add(d.method)
            halves.append(float(d.half_width[lay.index("mIoU")]))
            row["method"] = d.method
        for m in lay.names:
            i = lay.index(m)
            row[f"{m}_mean"], row[f"{m}_sd"] = mean[i], sd[i]
            if d is not None:
                row.update(diff_columns(d, m, i, sig[m][v] if adjust else None))
        cell = {
            "variant": v,
            "seeds": str(len(seeds)),
            "mIoU": _mean_sd(mean[lay.index("mIoU")], sd[lay.index("mIoU")], len(seeds)),
            "mBF@3": _mean_sd(mean[lay.index("mBF@3")], sd[lay.index("mBF@3")], len(seeds)),
            f"band mIoU@{bw}": _mean_sd(
                *(a[lay.index(f"band_mIoU@{bw}")] for a in (mean, sd)), len(seeds)
            ),
            f"interior mIoU@{bw}": _mean_sd(
                *(a[lay.index(f"interior_mIoU@{bw}")] for a in (mean, sd)), len(seeds)
            ),
            "GFLOPs": _num(row["gflops"], 3),
            "params (M)": _num(row["params"] / 1e6, 3),
        }
        for m in DIFF_METRICS:
            cell[f"Δ {m} [95% CI]"] = (
                "baseline" if d is None else _diff_cell(d, lay.index(m), sig[m][v])
            )
        if has_oc:
            oc = correctness.get(v)
            for step in STEPS:
                key = (step, PRIMARY.get(suite.runs[v][seeds[0]].align, ""))
                zero = zero_ref.get(
                    (step, PRIMARY[_align_of(suite, spec, correctness)]), (np.nan,) * 3
                )[1]
                learned = oc.get(key, (np.nan,) * 3)[0] if oc else float("nan")
                row[f"oc_{step}_learned"], row[f"oc_{step}_zero"] = learned, zero
                cell[f"offset corr. {step} (zero)"] = f"{_num(learned, 1)} ({_num(zero, 1)})"
        first = suite.runs[v][seeds[0]]
        rep = reported_miou(dataset, first.config)
        row["reported_mIoU"] = rep
        row["eval_mode"] = eval_mode(first.metrics_json.get("inference", {}))
        row.update(_extra_evals(suite, v, seeds))
        rows.append(row)
        shown.append(cell)
    shown_df = pd.DataFrame(shown)
    extra = [m for m in EXTRA_EVAL_DIRS if any(r.get(f"mIoU_{m}") is not None for r in rows)]
    if extra or any(r["reported_mIoU"] is not None for r in rows):
        # the mode of every measured number beside a paper number (design: never compare
        # single-scale with multi-scale unawares)
        shown_df.insert(2, "eval", [r["eval_mode"] for r in rows])
    else:  # no paper column: the tables stay as they were (the synthetic suite's)
        for r in rows:
            del r["eval_mode"]
            for m in EXTRA_EVAL_DIRS:
                del r[f"mIoU_{m}"]
    for m in extra:
        shown_df.insert(4, f"mIoU ({m})", [_num(r.get(f"mIoU_{m}")) for r in rows])
    if any(r["reported_mIoU"] is not None for r in rows):
        shown_df["reported mIoU (paper)"] = [
            _num(r["reported_mIoU"], 1) if r["reported_mIoU"] else "" for r in rows
        ]
    sdd = float(np.median(halves)) if halves else float("nan")
    notes = _notes(stats, spec, methods, sdd, has_oc, dataset, rows, list(diffs.values()), adjust)
    return Table(
        name, suite.name, spec.get("title", name), pd.DataFrame(rows), shown_df, notes, sdd
    )


def multiplicity_note(k: int, adjust: str | None, what: str = "comparisons to its baseline") -> str:
    if adjust == "holm":
        return (
            f"The table makes {k} {what}; n.s. marks significance after Holm's "
            "correction over them (per metric, family-wise 5%); the intervals and the excluded "
            "bounds are not adjusted."
        )
    return (
        f"The table makes {k} {what}; intervals and n.s. are not corrected for "
        "multiplicity (srcr report --adjust holm applies Holm's correction within each table)."
    )


EXCLUDED_NOTE = (
    "n.s.; |Δ| ≥ B excluded: the 90% interval (same method) lies inside ±B, so two "
    "one-sided tests at 5% reject every effect of B or more in either direction (CSV: "
    "d_METRIC_excluded, for every row)."
)


def seed_notes(stats: Statistics, diffs: list, width: float = 0.5) -> list[str]:
    """The pooled seed sd with its degrees of freedom, and how many seeds the observed spread would
    need for a 95% half-width of ``width`` mIoU (docs/statistics.md, "Planning seeds")."""
    from .power import seeds_for_half_width, seeds_text

    if not diffs:
        return []
    i = stats.layout.index("mIoU")
    sd, dof = stats.pooled_sd
    if not np.isfinite(sd) or dof < 1:
        return [
            f"Seeds for a ±{width:g} mIoU interval: unknown; no two variants share two seeds, "
            "so the seed spread is not measured (srcr plan needs a pilot of two seeds)."
        ]
    V, S = stats.pooled_design
    v_img = float(np.nanmedian([d.var_images[i] for d in diffs]))
    n = seeds_for_half_width(width, sd**2, v_img, V)
    return [
        f"Pooled seed sd of paired mIoU differences: {_num(sd)}, over every pair of variants "
        f"of the suite; {dof} degrees of freedom, the residual ones of an additive variant + "
        f"seed model ({V} variants x {S} seeds: (V − 1)(S − 1) for a complete design).",
        f"At this spread and the table's median image part (sd {_num(math.sqrt(v_img), 3)} "
        f"mIoU), a 95% interval of ±{width:g} mIoU needs {seeds_text(n)} seeds (srcr plan: "
        "seeds for a given power).",
    ]


def _extra_evals(suite: Suite, variant: str, seeds: list[int]) -> dict:
    """``mIoU_<mode>``: the seed mean of a second evaluation (paper.EXTRA_EVAL_DIRS) where every
    seed of the variant has one, else None. One of another checkpoint than eval/'s, or of another
    mode than its directory says, is a UserError."""
    import json

    out = {}
    for mode, sub in EXTRA_EVAL_DIRS.items():
        vals = []
        for s in seeds:
            run = suite.runs[variant][s]
            path = run.dir / sub / "metrics.json"
            if not path.is_file():
                continue
            rec = json.loads(path.read_text())
            own = run.metrics_json.get("checkpoint", {}).get("sha256")
            if rec.get("checkpoint", {}).get("sha256") != own:
                raise UserError(
                    f"{path}: evaluates another checkpoint than {run.dir / 'eval'}; "
                    f"evaluate the run's checkpoint again with eval.preset=ms_flip"
                )
            if eval_mode(rec.get("inference", {})) != mode:
                raise UserError(
                    f"{path}: is a {eval_mode(rec.get('inference', {}))} evaluation, "
                    f"expected {mode} (eval.preset=ms_flip)"
                )
            vals.append(rec["metrics"]["mIoU"])
        out[f"mIoU_{mode}"] = float(np.mean(vals)) if vals and len(vals) == len(seeds) else None
    return out


def _align_of(suite: Suite, spec: dict, correctness: dict) -> str:
    v = next(v for v in spec["variants"] if v in correctness)
    return suite.runs[v][suite.seeds(v)[0]].align


def _notes(stats, spec, methods, sdd, has_oc, dataset, rows, diffs, adjust) -> list[str]:
    suite, lay = stats.suite, stats.layout
    seeds = sorted({r["n_seeds"] for r in rows})
    prov = provenance(suite, spec["variants"])
    ds = suite.dataset
    notes = [
        f"Dataset: {dataset} ({ds.get('split', 'val')}, {stats.n_images} images); seeds per variant: "
        f"{', '.join(map(str, seeds))}; baseline: {spec['baseline']}.",
        "Cells: mean ± standard deviation over seeds (a single number with one seed). Δ: paired difference "
        "to the baseline with its 95% interval; n.s. = the interval contains zero (not significant).",
        "Intervals: "
        + "; ".join(METHOD_TEXT[m] for m in sorted(methods))
        + f" ({stats.B} resamples)."
        if methods
        else "Intervals: none (the table holds the baseline only).",
        f"Smallest detectable difference (median 95% half-width of Δ mIoU): {_num(sdd)} mIoU. "
        + multiplicity_note(len(rows) - 1, adjust),
        EXCLUDED_NOTE,
        f"Band / interior: pixels within / beyond {lay.band_width:g} px of a label boundary (trimap).",
    ]
    notes += seed_notes(stats, diffs)
    if has_oc:
        notes.append(
            "Offset correctness: share (%) of fine-grid pixels within 1 px of a label boundary whose "
            "sampling location lies in a coarse cell of their own majority label, learned offsets "
            "(zero offsets = what bilinear upsampling reads); first seed, offset images of eval/offsets.npz."
        )
    if any(r["reported_mIoU"] is not None for r in rows):
        notes.append(
            "reported mIoU (paper): the number in the paper's abstract, not measured here."
        )
    if any("eval_mode" in r for r in rows):
        modes = sorted({r["eval_mode"] for r in rows})
        notes.append(
            f"Evaluation of mIoU and the other measured columns: {', '.join(modes)} (ss = one scale, "
            "no flip; ms+flip = mmseg's ratios 0.5-1.75 with flip)."
            + (
                " mIoU (ms+flip): a second evaluation (eval_ms_flip/, eval.preset=ms_flip), seed mean."
                if any(r.get("mIoU_ms+flip") is not None for r in rows)
                else ""
            )
        )
    if dataset in REPORTED_NOTES:
        notes.append(REPORTED_NOTES[dataset])
    cfg = suite.any_run().config
    contexts = {
        suite.runs[v][suite.seeds(v)[0]].config.get("model", {}).get("context")
        for v in spec["variants"]
    }
    if len(contexts) > 1 and (maps := context_maps(cfg)):
        notes.append(maps)
    notes.append("Machine: " + "; ".join(prov["machine"]) + ".")
    notes.append("Code: " + "; ".join(prov["code"]) + ".")
    tr = cfg.get("train", {})
    conf = (
        f"Config: backbone {cfg.get('model', {}).get('backbone', '?')}, {tr.get('iterations', '?')} iterations "
        f"x batch {tr.get('batch_size', '?')}; base config sha256 {', '.join(prov['config'])}"
    )
    if len(prov["config"]) > 1:
        conf += " (WARNING: the runs differ in more than the variant's own keys)"
    notes.append(conf + ".")
    return notes


def context_maps(cfg: dict, stride: int = 32) -> str | None:
    """What the context modules saw (they run on the stride-32 map): its size in cells in training
    and at evaluation, from a run's resolved config; None if the config does not say."""
    crop = cfg.get("data", {}).get("train_pipeline", {}).get("crop_size")
    ev = cfg.get("eval", {})
    if not crop or "mode" not in ev:
        return None

    def cells(hw) -> str:
        return f"{math.ceil(hw[0] / stride)}x{math.ceil(hw[1] / stride)}"

    if ev["mode"] == "slide":
        at_eval = f"{cells(ev['crop_size'])} at evaluation ({ev['crop_size'][0]}x{ev['crop_size'][1]} windows)"
    elif (size := _eval_image_size(cfg)) is not None:
        at_eval = f"{cells(size)} at evaluation ({size[0]}x{size[1]} images)"
    else:
        fitted = (
            f" (images fitted into {ev['scale'][0]}x{ev['scale'][1]})" if ev.get("scale") else ""
        )
        at_eval = f"image size / {stride} at evaluation{fitted}"
    return (
        f"Context modules: they see the stride-{stride} map, {cells(crop)} cells in training "
        f"({crop[0]}x{crop[1]} crops) and {at_eval}."
    )


def _eval_image_size(cfg: dict) -> tuple[int, int] | None:
    """The whole-image inference size where the config fixes it (the synthetic set's one image size,
    after eval.scale's keep-ratio fit); None for datasets whose images vary."""
    from ..data.transforms import rescale_size

    data = cfg["data"]
    if data.get("dataset") != "synthetic" or not (data.get("synthetic") or {}).get("size"):
        return None
    size = tuple(data["synthetic"]["size"])
    return rescale_size(size, cfg["eval"]["scale"]) if cfg["eval"].get("scale") else size


# --------------------------------------------------------------------------------------------------
# writers


def to_markdown(t: Table, heading: str = "###") -> str:
    cells = t.shown.map(lambda c: str(c).replace("|", "\\|"))  # "|Δ|" must not end a cell
    lines = [
        f"{heading} {t.title} ({t.suite})",
        "",
        cells.to_markdown(index=False, disable_numparse=True),
        "",
    ]
    lines += [f"- {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "–": "--",
    "−": "-",
    "≥": r"$\geq$",
    "|": r"\textbar{}",
}


def tex_escape(s: str) -> str:
    parts = str(s).split("|Δ|")  # |Δ| as one formula: a bare | is an em dash in OT1
    return r"$|\Delta|$".join("".join(_TEX.get(ch, ch) for ch in part) for part in parts)


def to_latex(t: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); notes as a footnote block."""
    cols = list(t.shown.columns)
    spec = "l" + "r" * (len(cols) - 1)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{tex_escape(t.title)} ({tex_escape(t.suite)})}}",
        rf"\label{{tab:{t.suite}_{t.name}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(tex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for _, row in t.shown.iterrows():
        out.append(" & ".join(tex_escape(row[c]) for c in cols) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\parbox{\linewidth}{\footnotesize"]
    out += [tex_escape(n) + r"\\" for n in t.notes]
    out += ["}", r"\end{table}"]
    return "\n".join(out) + "\n"


def to_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6g")


# --------------------------------------------------------------------------------------------------
# cross-dataset


def cross_table(name: str, title: str, tables: list[Table]) -> Table:
    """One column block per suite: mIoU, Δ mIoU [CI] and the reported number where there is one."""
    order = list(dict.fromkeys(v for t in tables for v in t.csv["variant"]))
    shown = pd.DataFrame({"variant": order})
    rows = []
    for t in tables:
        by = t.csv.set_index("variant")
        cells_m, cells_d, cells_r = [], [], []
        for v in order:
            if v not in by.index:
                cells_m.append("")
                cells_d.append("")
                cells_r.append("")
                continue
            r = by.loc[v]
            cells_m.append(_mean_sd(r["mIoU_mean"], r["mIoU_sd"], int(r["n_seeds"])))
            if r["is_baseline"]:
                cells_d.append("baseline")
            else:
                sig = r.get("d_mIoU_significant_holm", r["d_mIoU_significant"])
                cells_d.append(
                    _diff_text(
                        r["d_mIoU"], r["d_mIoU_lo"], r["d_mIoU_hi"], bool(sig), r["d_mIoU_excluded"]
                    )
                )
            rep = r.get("reported_mIoU")
            cells_r.append(_num(rep, 1) if rep is not None and not pd.isna(rep) else "")
            rows.append({**r.to_dict(), "variant": v})
        modes = sorted(set(t.csv["eval_mode"])) if "eval_mode" in t.csv else []
        # beside a paper number, the header names the evaluation mode of the measured one
        label = f"mIoU ({', '.join(modes)})" if any(cells_r) and modes else "mIoU"
        shown[f"{t.suite}: {label}"] = cells_m
        shown[f"{t.suite}: Δ mIoU [95% CI]"] = cells_d
        if any(cells_r):
            shown[f"{t.suite}: reported (paper)"] = cells_r
    notes = [
        f"{t.suite}: {t.notes[0]} {t.notes[2]} Smallest detectable difference {_num(t.sdd)} mIoU."
        for t in tables
    ]
    notes.append(
        "Each block is measured on its own dataset; see the per-dataset tables for machine, code and config."
    )
    return Table(name, "cross-dataset", title, pd.DataFrame(rows), shown, notes)
