"""What a suite config asks for, resolved and checked before any job runs: the base run config with
the suite's own overrides, the variants its tables need, the seeds, the synthetic data to generate,
the GFLOPs size and the resources per step. The Snakemake workflow reads only this."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .grid import Grid, load_grid

STEPS = ("train", "evaluate", "flops")
# `latency:` of a suite config: srcr bench model's options (workflow/schemas/suite.schema.json)
LATENCY_DEFAULTS = {"batch": 1, "dtype": "fp32", "mode": "whole", "repeats": 20, "warmup": 3}


@dataclass(frozen=True)
class Pretrain:
    """One run whose backbone every variant and seed fine-tunes from (the paper's protocol
    fine-tunes an ImageNet-pretrained backbone; on the synthetic set this run stands in for it)."""

    variant: str
    seed: int
    data_root: str
    synthetic: dict | None  # the separate split to generate (synthetic suites), else None
    overrides: tuple[str, ...]  # every --set of the pretraining run


@dataclass(frozen=True)
class SuitePlan:
    name: str
    base_config: str
    grid: Grid
    tables: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    common: tuple[str, ...]  # overrides applied to every run (suite `set`, `data_root`)
    base: dict  # the resolved base config (common overrides applied)
    flops_size: tuple[int, int] | None
    resources: dict[str, dict[str, Any]]
    pretrain: Pretrain | None = None
    group_by_seed: bool = False  # one `srcr train` process per seed trains every variant
    latency: dict | None = None  # srcr bench model's options per variant, or None (off)

    @property
    def pretrained(self) -> str | None:
        """The checkpoint every run fine-tunes from, or None (from scratch)."""
        return f"results/{self.name}/pretrain/checkpoints/final.pth" if self.pretrain else None

    @property
    def dataset(self) -> str:
        return self.base["data"]["dataset"]

    @property
    def data_root(self) -> str:
        return str(self.base["data"]["root"])

    @property
    def synthetic(self) -> dict | None:
        """n_train, n_val, size, seed of the synthetic set to generate, or None for real data."""
        return dict(self.base["data"]["synthetic"]) if self.dataset == "synthetic" else None

    def overrides(self, variant: str, seed: int | None = None) -> list[str]:
        """Every --set of one run: the suite's, then the variant's, then the seed."""
        over = list(self.common) + list(self.grid.variants[variant].overrides)
        if self.pretrained:
            over.append(f"model.pretrained={self.pretrained}")
        return over + ([f"seed={int(seed)}"] if seed is not None else [])

    def runs(self) -> list[tuple[str, int]]:
        return [(v, s) for v in self.variants for s in self.seeds]

    def seed_group(self, seed: int) -> tuple[list[str], list[tuple[str, list[str]]]]:
        """The --sets of one `srcr train` process that trains every variant of ``seed``: those
        every run shares (before the first --run), then (variant, its own) per run. Each run's
        full list, shared + own, is exactly ``overrides(variant, seed)``."""
        full = [self.overrides(v, seed) for v in self.variants]
        n = 0
        while all(len(f) > n for f in full) and len({f[n] for f in full}) == 1:
            n += 1
        return full[0][:n], [(v, f[n:]) for v, f in zip(self.variants, full)]


def make_plan(config: dict) -> SuitePlan:
    """``config`` is the suite config as validated by workflow/schemas/suite.schema.json."""
    from ..config import load_config

    grid = load_grid(config["grid"])
    tables = tuple(config["tables"])
    for t in tables:
        if t not in grid.tables:
            raise UserError(
                f"suite config: tables: unknown table {t!r} (the grid {grid.path} has: "
                f"{', '.join(grid.tables)})"
            )
    seeds = tuple(int(s) for s in config["seeds"])
    if len(set(seeds)) != len(seeds):
        raise UserError(f"suite config: seeds: a seed is listed twice: {list(seeds)}")
    common = tuple(config.get("set") or ()) + (
        (f"data.root={config['data_root']}",) if config.get("data_root") else ()
    )
    base = load_config(config["base_config"], list(common))
    variants = tuple(grid.variants_of(list(tables)))
    resolved = {}
    for v in variants:  # every run's config must be valid before the first job starts
        try:
            resolved[v] = load_config(
                config["base_config"], list(common) + list(grid.variants[v].overrides)
            )
        except UserError as e:
            raise UserError(
                f"variant {v!r} of {grid.path} on {config['base_config']}: {e}"
            ) from None
    size = config.get("flops_size")
    pretrain = _pretrain(config, grid, common, base) if config.get("pretrain") else None
    if pretrain and "pretrain" not in config["resources"]:
        raise UserError("suite config: resources.pretrain is required when pretrain is set")
    steps = STEPS + (("pretrain",) if pretrain else ())
    group = bool(config.get("group_by_seed", False))
    if group:
        _check_seed_groups(config, resolved)
    return SuitePlan(
        name=config["name"],
        base_config=config["base_config"],
        grid=grid,
        tables=tables,
        variants=variants,
        seeds=seeds,
        common=common,
        base=base,
        flops_size=tuple(size) if size else None,
        resources={step: dict(config["resources"][step]) for step in steps},
        pretrain=pretrain,
        group_by_seed=group,
        latency=_latency(config.get("latency")),
    )


def _latency(spec: dict | None) -> dict | None:
    """srcr bench model's options of a suite's `latency:` (None: off), defaults filled in."""
    return None if spec is None else {**LATENCY_DEFAULTS, **spec}


def load_plan(path: str) -> SuitePlan:
    """A suite config file read for planning (`srcr plan`), without the workflow's defaults: the
    grid defaults to ablations/grid.yaml and absent resources to one CPU thread per step."""
    from ..config import load_yaml

    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: not a suite config mapping")
    for key in ("name", "base_config", "tables", "seeds"):
        if key not in raw:
            raise UserError(f"{path}: suite config key {key!r} is missing")
    raw.setdefault("grid", "ablations/grid.yaml")
    raw.setdefault(
        "resources", {s: {"threads": 1, "mem_mb": 1000, "runtime": 1, "gpu": 0} for s in STEPS}
    )
    return make_plan(raw)


def _check_seed_groups(config: dict, resolved: dict[str, dict]) -> None:
    """group_by_seed trains every variant of a seed in one process: they must see the same batches
    (srcr.train.GROUP_KEYS), and one process cannot be a torchrun job."""
    from ..train import GROUP_KEYS, group_conflicts

    if config["resources"]["train"]["gpu"] > 1:
        raise UserError(
            "suite config: group_by_seed trains every variant of a seed in one process, which "
            "cannot run under torchrun: set resources.train.gpu to 0 or 1, or group_by_seed: false"
        )
    (first, lead), *rest = resolved.items()
    for v, cfg in rest:
        diff = group_conflicts(lead, cfg)
        if diff:
            raise UserError(
                f"suite config: group_by_seed: variant {v!r} cannot train in one process with "
                f"{first!r}: they must agree on {', '.join(GROUP_KEYS)} and differ in "
                f"{', '.join(diff)}; set group_by_seed: false"
            )


def _pretrain(config: dict, grid: Grid, common: tuple[str, ...], base: dict) -> Pretrain:
    """The pretraining run: the suite's overrides, its variant's, then its own, on its own data."""
    from ..config import load_config

    spec = config["pretrain"]
    if spec["variant"] not in grid.variants:
        raise UserError(
            f"suite config: pretrain.variant: unknown variant {spec['variant']!r} (the grid "
            f"{grid.path} has: {', '.join(grid.variants)})"
        )
    data = [f"data.root={spec['data_root']}"]
    synthetic = None
    if base["data"]["dataset"] == "synthetic":
        synthetic = {**base["data"]["synthetic"], **(spec.get("synthetic") or {})}
        if synthetic["seed"] == base["data"]["synthetic"]["seed"]:
            raise UserError(
                f"suite config: pretrain.synthetic.seed must differ from the evaluated set's seed "
                f"({synthetic['seed']}): pretraining must not see the validation images"
            )
        data.append("data.synthetic=" + json.dumps(synthetic))
    over = (
        *common,
        *grid.variants[spec["variant"]].overrides,
        *data,
        *(spec.get("set") or ()),
        f"seed={int(spec['seed'])}",
    )
    try:
        resolved = load_config(config["base_config"], list(over))
    except UserError as e:
        raise UserError(f"suite config: pretrain: {e}") from None
    if resolved["train"]["freeze_backbone"]:
        raise UserError(
            "suite config: pretrain: train.freeze_backbone is true for the pretraining run (the "
            "suite's set freezes it for fine-tuning?); add train.freeze_backbone=false to pretrain.set"
        )
    return Pretrain(spec["variant"], int(spec["seed"]), spec["data_root"], synthetic, tuple(over))
