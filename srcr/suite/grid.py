"""The variant grid, as data: ``variants`` (name -> description and the ``--set`` overrides it
applies to a base run config) and ``tables`` (name -> title, baseline and the variants it compares).

    variants:
      bilinear_none: {description: ..., set: {model.align: bilinear, model.context: none}}
    tables:
      components: {title: ..., baseline: bilinear_none, variants: [bilinear_none, srm_none, ...]}
      controls: {title: ..., twins: {bilinear_crm_shift: bilinear_crm, srm_crm_shift: srm_crm}}

A table with ``twins`` (handicapped variant -> its uncorrupted twin) is a control table: each
handicapped variant is compared with its twin, and the first pair's loss is the reference that the
others' recovery is measured against.

Override values are written as JSON (which YAML reads back unchanged), so ``{kernel_size: 3}``
becomes ``model.align_options={"kernel_size": 3}``; plain words stay plain (``model.align=srm``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: tuple[str, ...]
    settings: dict  # the grid's `set` mapping as written (key -> value)


@dataclass(frozen=True)
class Table:
    """A comparison table. Ablation tables compare every variant to ``baseline``. A control table
    instead pairs each handicapped variant with its uncorrupted twin (``twins``: (handicapped,
    clean) pairs; ``baseline`` is then None) and is kept out of the paper tables' figures."""

    name: str
    title: str
    baseline: str | None
    variants: tuple[str, ...]
    twins: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Grid:
    path: str
    variants: dict[str, Variant]
    tables: dict[str, Table]

    def variants_of(self, tables: list[str]) -> list[str]:
        """The variants the given tables need, each once, in the order they first appear."""
        seen: dict[str, None] = {}
        for t in tables:
            for v in self.tables[t].variants:
                seen.setdefault(v, None)
        return list(seen)


def override_strings(settings: dict, where: str) -> tuple[str, ...]:
    if not isinstance(settings, dict):
        raise UserError(
            f"{where}: 'set' must be a mapping of config keys to values, got {settings!r}"
        )
    out = []
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{where}: config key {key!r} is not a dotted key such as model.align")
        out.append(f"{key}={_yaml_text(value)}")
    return tuple(out)


def _yaml_text(value: Any) -> str:
    """A plain word where YAML reads it back as the same string (model.align=srm), else JSON."""
    import yaml

    if isinstance(value, str) and value and yaml.safe_load(value) == value and " " not in value:
        return value
    return json.dumps(value)


def _mapping(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{where}: expected a non-empty mapping, got {type(obj).__name__}")
    return obj


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(
            f"{where}: name {name!r} must be lower-case letters, digits and '_', starting with a "
            f"letter (names become folder names and Snakemake wildcards)"
        )
    return name


def _parse_variants(raw: dict, path: str) -> dict[str, Variant]:
    variants = {}
    for name, spec in _mapping(raw, f"{path}: variants").items():
        where = f"{path}: variants.{name}"
        _check_name(name, where)
        spec = _mapping(spec, where)
        unknown = set(spec) - {"description", "set"}
        if unknown:
            raise UserError(f"{where}: unknown keys {sorted(unknown)} (allowed: description, set)")
        settings = spec.get("set", {})
        variants[name] = Variant(
            name,
            str(spec.get("description", "")),
            override_strings(settings, where),
            dict(settings),
        )
    return variants


def _parse_twins(spec: dict, where: str, variants: dict[str, Variant]) -> Table:
    unknown = set(spec) - {"title", "twins"}
    if unknown:
        raise UserError(
            f"{where}: unknown keys {sorted(unknown)} (a control table has title and twins)"
        )
    twins = _mapping(spec["twins"], f"{where}.twins")
    for v in (*twins, *twins.values()):
        if v not in variants:
            raise UserError(
                f"{where}.twins: unknown variant {v!r} (declared: {', '.join(variants)})"
            )
    members = list(dict.fromkeys(v for pair in twins.items() for v in pair))
    clash = set(twins) & set(twins.values())
    if clash:
        raise UserError(
            f"{where}.twins: {sorted(clash)} is both a handicapped variant and a clean twin"
        )
    name = where.rsplit(".", 1)[-1]
    return Table(name, str(spec.get("title", name)), None, tuple(members), tuple(twins.items()))


def _parse_tables(raw: dict, path: str, variants: dict[str, Variant]) -> dict[str, Table]:
    tables = {}
    for name, spec in _mapping(raw, f"{path}: tables").items():
        where = f"{path}: tables.{name}"
        _check_name(name, where)
        spec = _mapping(spec, where)
        if "twins" in spec:
            tables[name] = _parse_twins(spec, where, variants)
            continue
        unknown = set(spec) - {"title", "baseline", "variants"}
        if unknown:
            raise UserError(
                f"{where}: unknown keys {sorted(unknown)} (allowed: title, baseline, variants; "
                "or title, twins for a control table)"
            )
        members = spec.get("variants")
        if not isinstance(members, list) or not members:
            raise UserError(f"{where}.variants: expected a non-empty list of variant names")
        for v in members:
            if v not in variants:
                raise UserError(
                    f"{where}.variants: unknown variant {v!r} (declared: {', '.join(variants)})"
                )
        if len(set(members)) != len(members):
            raise UserError(f"{where}.variants: a variant is listed twice: {members}")
        baseline = spec.get("baseline")
        if baseline not in members:
            raise UserError(
                f"{where}.baseline: {baseline!r} is not one of the table's variants {members}"
            )
        tables[name] = Table(name, str(spec.get("title", name)), baseline, tuple(members))
    return tables


def load_grid(path: str | Path) -> Grid:
    from ..config import load_yaml

    path = str(path)
    if not Path(path).is_file():
        raise UserError(f"grid file not found: {path}")
    raw = _mapping(load_yaml(path), path)
    unknown = set(raw) - {"variants", "tables"}
    if unknown:
        raise UserError(
            f"{path}: unknown top-level keys {sorted(unknown)} (allowed: variants, tables)"
        )
    variants = _parse_variants(raw.get("variants"), path)
    return Grid(path, variants, _parse_tables(raw.get("tables"), path, variants))
