"""Reading the grid YAML and a results tree (results/{suite}/...) for `srcr report`.

Everything is checked before any statistics run: a missing or unreadable file (a run's
eval/metrics.json, eval/per_image.npz, log.jsonl) or an unknown table / variant is a UserError
naming the path or key, so a bad run stops the report before it writes anything. Checkpoints are
never read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..utils.machine import chip

SEED_DIR = re.compile(r"^seed(\d+)$")


@dataclass
class Grid:
    path: Path
    variants: dict[str, dict]  # name -> {"description", "set"}
    tables: dict[str, dict]  # name -> {"title", "baseline", "variants"}


@dataclass
class Run:
    variant: str
    seed: int
    dir: Path
    metrics_json: dict  # eval/metrics.json (metrics, config, dataset, code_version, device)
    counts: dict[str, np.ndarray]
    eval_config: dict  # SegEvaluator config of per_image.npz
    names: list[str]
    summary: dict | None  # summary.json of srcr train (absent for older runs)
    confusion: np.ndarray  # (K, K) pixel counts, rows = label, columns = prediction
    log: list[dict]  # log.jsonl of srcr train: one record per log interval

    @property
    def config(self) -> dict:
        return self.metrics_json.get("config", {})

    @property
    def align(self) -> str:
        return str(self.config.get("model", {}).get("align", ""))

    @property
    def offsets_path(self) -> Path:
        return self.dir / "eval" / "offsets.npz"


@dataclass
class Suite:
    name: str
    root: Path
    runs: dict[str, dict[int, Run]]  # variant -> seed -> run
    flops: dict[str, dict]  # variant -> `srcr flops --json` content
    grid: Grid
    names: list[str] = field(default_factory=list)

    def seeds(self, variant: str) -> list[int]:
        return sorted(self.runs[variant])

    def any_run(self) -> Run:
        return next(iter(next(iter(self.runs.values())).values()))

    @property
    def eval_config(self) -> dict:
        return self.any_run().eval_config

    @property
    def class_names(self) -> list[str]:
        cfg = self.eval_config
        return list(cfg.get("class_names") or [str(c) for c in range(cfg["num_classes"])])

    @property
    def dataset(self) -> dict:
        return self.any_run().metrics_json.get("dataset", {})


def load_grid(path: str | Path, tables: list[str] | None = None) -> Grid:
    """The grid's variants and tables (only ``tables`` if given, in that order), as plain dicts;
    parsed and checked by srcr.suite.grid, the parser the workflow uses."""
    from ..suite.grid import load_grid as parse_grid

    path = Path(path)
    parsed = parse_grid(path)
    variants = {
        v.name: {"description": v.description, "set": dict(v.settings)}
        for v in parsed.variants.values()
    }
    all_tables = {
        t.name: {
            "title": t.title,
            "baseline": t.baseline,
            "variants": list(t.variants),
            "twins": [list(p) for p in t.twins],
        }
        for t in parsed.tables.values()
    }
    if tables:
        unknown = [t for t in tables if t not in all_tables]
        if unknown:
            raise UserError(
                f"{path}: unknown table(s) {', '.join(unknown)}; the grid has "
                f"{', '.join(all_tables)}"
            )
        all_tables = {t: all_tables[t] for t in tables}
    return Grid(path, variants, all_tables)


def _read_json(path: Path) -> dict:
    from ..utils.io import read_json

    try:
        data = read_json(path)
    except OSError as e:  # a directory, no permission
        raise UserError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_per_image(path: Path) -> dict:
    from ..metrics.evaluator import load_per_image

    if not path.is_file():
        raise UserError(f"missing result file: {path}")
    try:
        return load_per_image(path)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  a truncated zip, a missing array: name the file
        raise UserError(f"{path}: cannot read per-image counts ({type(e).__name__}: {e})") from None


def read_log(path: Path) -> list[dict]:
    """log.jsonl of srcr train: records with an integer ``iteration`` and numbers (the lr, the
    loss terms), in iteration order; UserError naming the file (and line) otherwise."""
    if not path.is_file():
        raise UserError(f"missing training log: {path} (srcr train writes it)")
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise UserError(f"{path}, line {i}: not valid JSON ({e})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("iteration"), int):
            raise UserError(f"{path}, line {i}: expected an object with an integer 'iteration'")
        records.append(rec)
    if not records:
        raise UserError(f"{path}: no log records (expected one JSON object per line)")
    return sorted(records, key=lambda r: r["iteration"])


def _load_run(variant: str, seed: int, run_dir: Path) -> Run:
    metrics = _read_json(run_dir / "eval" / "metrics.json")
    state = _read_per_image(run_dir / "eval" / "per_image.npz")
    summary_path = run_dir / "summary.json"
    summary = _read_json(summary_path) if summary_path.is_file() else None
    log = read_log(run_dir / "log.jsonl")
    return Run(
        variant,
        seed,
        run_dir,
        metrics,
        state["counts"],
        state["config"],
        state["names"],
        summary,
        np.asarray(state["confusion"], np.int64),
        log,
    )


def _seed_dirs(variant_dir: Path) -> dict[int, Path]:
    if not variant_dir.is_dir():
        return {}
    return {
        int(m.group(1)): p
        for p in sorted(variant_dir.iterdir())
        if p.is_dir() and (m := SEED_DIR.match(p.name))
    }


def load_suite(results: str | Path, grid: Grid) -> Suite:
    """Every run of the grid's variants found under ``results``. The variants of the selected
    tables must all be there; other grid variants found are loaded too (they feed the pooled seed
    variance)."""
    root = Path(results)
    if not root.is_dir():
        raise UserError(f"results directory not found: {root}")
    needed = {v: t for t, spec in grid.tables.items() for v in spec["variants"]}
    runs: dict[str, dict[int, Run]] = {}
    for variant in grid.variants:
        dirs = _seed_dirs(root / variant)
        if not dirs:
            if variant in needed:
                raise UserError(
                    f"{root}: variant '{variant}' of table '{needed[variant]}' has no runs "
                    f"(expected {root / variant}/seed<N>/eval/metrics.json)"
                )
            continue
        runs[variant] = {s: _load_run(variant, s, d) for s, d in dirs.items()}
    if not runs:
        raise UserError(f"{root}: no runs of any variant in {grid.path}")
    flops = {}
    for variant in runs:
        path = root / "flops" / f"{variant}.json"
        flops[variant] = _read_json(path)
        if "gflops" not in flops[variant] or "params" not in flops[variant]:
            raise UserError(
                f"{path}: expected keys 'gflops' and 'params' (srcr flops --json output)"
            )
    suite = Suite(root.name, root, runs, flops, grid)
    _check_paired(suite)
    return suite


def _check_paired(suite: Suite) -> None:
    """Every run must score the same images in the same order with the same metric settings:
    the statistics pair variants by image."""
    ref = suite.any_run()
    keys = ("num_classes", "ignore_index", "bf_tolerances", "trimap_widths", "biou_width")
    for seeds in suite.runs.values():
        for run in seeds.values():
            npz = run.dir / "eval" / "per_image.npz"
            if run.names != ref.names:
                raise UserError(
                    f"{npz}: scores other images than {ref.dir / 'eval' / 'per_image.npz'} "
                    f"({len(run.names)} vs {len(ref.names)} images, or another order); "
                    "variants are compared image by image"
                )
            for k in keys:
                if run.eval_config.get(k) != ref.eval_config.get(k):
                    raise UserError(
                        f"{npz}: metric setting {k}={run.eval_config.get(k)!r} differs from "
                        f"{ref.eval_config.get(k)!r} in {ref.dir / 'eval' / 'per_image.npz'}"
                    )
    suite.names = list(ref.names)


# --------------------------------------------------------------------------------------------------
# provenance: machine, config, code version


def _drop(cfg: dict, dotted: str) -> None:
    parts = dotted.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.get(p)
        if not isinstance(node, dict):
            return
    node.pop(parts[-1], None)


def base_config_hash(run: Run, grid: Grid) -> str:
    """sha256 (12 hex) of the resolved config without the seed and every key any grid variant sets:
    equal for every run of a suite trained from the same base config."""
    cfg = json.loads(json.dumps(run.config))
    cfg.pop("seed", None)
    for key in {k for spec in grid.variants.values() for k in (spec.get("set") or {})}:
        _drop(cfg, key)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def machine_text(run: Run) -> str:
    m = (run.summary or {}).get("machine")
    if not m:
        return f"not recorded (no summary.json; evaluated on {run.metrics_json.get('device', '?')})"
    return (
        f"{m.get('device', '?')} ({chip(m)}), torch {m.get('torch', '?')}, "
        f"{m.get('threads', '?')} thread(s), {m.get('hostname', '?')}"
    )


def code_text(run: Run) -> str:
    cv = run.metrics_json.get("code_version") or {}
    text = f"srcr {cv.get('srcr', '?')}"
    return text + (f" (git {cv['git']})" if cv.get("git") else "")


def provenance(suite: Suite, variants: list[str]) -> dict[str, list[str]]:
    """Distinct machine / code / base-config descriptions over the runs of ``variants``."""
    out: dict[str, list[str]] = {"machine": [], "code": [], "config": []}
    for v in variants:
        for run in suite.runs[v].values():
            for key, text in (
                ("machine", machine_text(run)),
                ("code", code_text(run)),
                ("config", base_config_hash(run, suite.grid)),
            ):
                if text not in out[key]:
                    out[key].append(text)
    return out
