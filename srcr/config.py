"""Run configuration: YAML file + ``--set key.path=value`` overrides, defaults filled in from the JSON
schema (srcr/schemas/config.schema.json) and validated before anything runs.

Every error is a :class:`srcr.errors.UserError` naming the key path (``train.optimizer.name``), the
offending value and what was expected (the allowed values or the expected type).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

__all__ = [
    "load_config",
    "load_yaml",
    "parse_yaml_value",
    "defaults",
    "validate",
    "apply_overrides",
    "config_diff",
    "dump_config",
    "flatten",
    "schema",
    "resolve_config",
]


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping defines one key twice: plain YAML keeps the last definition without a word."""

    def __init__(self, key: Any, first, second):
        super().__init__(None, None, f"duplicate key {key!r}", second)
        self.key, self.first_line, self.line = key, first.line + 1, second.line + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``6e-5`` as a float (YAML 1.1 insists on a dot: ``6.0e-5``);
    otherwise a learning rate written the usual way would arrive as a string. A key defined twice
    in one mapping is an error (DuplicateKeyError), not a silent choice of the last definition."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys may be overridden on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: the base constructor names it
                if first is not key_node.start_mark:
                    raise DuplicateKeyError(key, first, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                 |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                 |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                 |[-+]?\.(?:inf|Inf|INF)
                 |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper, data):
    # short lists of scalars in flow style ([128, 256]) keep the resolved config readable
    flow = all(not isinstance(x, (list, dict)) for x in data) and len(data) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


@functools.lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("srcr").joinpath("schemas/config.schema.json").read_text()


def schema() -> dict:
    """The config JSON schema (a fresh copy)."""
    return json.loads(_schema_text())


# ----------------------------------------------------------------------------------------------------
# YAML


def load_yaml(path: str | Path) -> Any:
    """Every YAML file srcr and the workflow read (run and suite configs, the grid, class lists)
    goes through here: a key defined twice is a UserError naming the file, the line and the key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except DuplicateKeyError as e:
        raise UserError(
            f"{path}, line {e.line}: duplicate key {e.key!r} (first defined on line "
            f"{e.first_line}); YAML would silently keep the last one, so remove or "
            f"rename one of them"
        ) from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {e}") from None


def parse_yaml_value(text: str) -> Any:
    """Parse one ``--set`` value as YAML (``3``, ``1e-3``, ``[512, 512]``, ``null``, ``srm``)."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else None
    except DuplicateKeyError as e:
        raise UserError(f"value {text!r}: duplicate key {e.key!r}") from None
    except yaml.YAMLError as e:
        raise UserError(f"value {text!r} is not valid YAML: {e}") from None


def dump_config(cfg: dict) -> str:
    return yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


# ----------------------------------------------------------------------------------------------------
# defaults, merging, overrides


def _resolve_ref(node: dict, root: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _defaults_of(node: dict, root: dict) -> Any:
    node = _resolve_ref(node, root)
    if "default" in node:
        return copy.deepcopy(node["default"])
    if "properties" in node:
        out = {}
        for key, sub in node["properties"].items():
            value = _defaults_of(sub, root)
            if value is not _MISSING:
                out[key] = value
        return out
    return _MISSING


_MISSING = object()


def defaults() -> dict:
    """Every key's default, taken from the schema (``model.num_classes`` has none: it is required)."""
    s = schema()
    return _defaults_of(s, s)


def _deep_merge(base: Any, update: Any) -> Any:
    if isinstance(base, dict) and isinstance(update, dict):
        out = dict(base)
        for k, v in update.items():
            out[k] = _deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(update)


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Apply ``key.path=value`` overrides (value parsed as YAML); unknown keys are an error."""
    cfg = copy.deepcopy(cfg)
    root = schema()
    for item in overrides or ():
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY.PATH=VALUE (e.g. train.iterations=100)")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise UserError(f"--set {item!r}: empty key path")
        # walk the schema, so the message can say which keys exist where the path goes wrong
        node = _resolve_ref(root, root)
        for depth, part in enumerate(parts):
            props = node.get("properties")
            where = ".".join(parts[:depth]) or "the top level"
            if props is None:
                if node.get("type") == "object":
                    break  # free-form options dict
                raise UserError(
                    f"--set {item}: '{'.'.join(parts[:depth])}' is a value, not a section, "
                    f"so it has no key '{part}'"
                )
            if part not in props:
                raise UserError(
                    f"--set {item}: unknown key '{'.'.join(parts[: depth + 1])}' "
                    f"(keys under {where}: {', '.join(props)})"
                )
            node = _resolve_ref(props[part], root)
        value = parse_yaml_value(text)
        target = cfg
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    return cfg


# ----------------------------------------------------------------------------------------------------
# validation


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _path_str(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_error(err) -> list[str]:
    path = _path_str(err.absolute_path)
    at = path or "the config"
    v, inst = err.validator, err.instance
    if v == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extras = [k for k in inst if k not in allowed]
        return [
            f"unknown key '{_path_str([*err.absolute_path, k])}' "
            f"(allowed keys{' under ' + path if path else ''}: {', '.join(allowed)})"
            for k in extras
        ]
    if v == "enum":
        return [
            f"{at}: {_short(inst)} is not allowed; expected one of: "
            f"{', '.join(x if isinstance(x, str) else json.dumps(x) for x in err.validator_value)}"
        ]
    if v == "type":
        types = (
            err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        )
        expected = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return [f"{at}: expected {expected}, got {_short(inst)} ({_yaml_type(inst)})"]
    if v == "required":
        missing = [k for k in err.validator_value if k not in inst]
        return [f"missing required key '{_path_str([*err.absolute_path, k])}'" for k in missing]
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return [
            f"{at}: {_short(inst)} is out of range; expected a value {op} {err.validator_value}"
        ]
    if v in ("minItems", "maxItems"):
        lo, hi = err.schema.get("minItems"), err.schema.get("maxItems")
        want = (
            f"exactly {lo}"
            if lo == hi
            else (f"at least {lo}" if v == "minItems" else f"at most {hi}")
        )
        return [f"{at}: expected a list of {want} item(s), got {len(inst)}: {_short(inst)}"]
    if v == "minLength":
        return [f"{at}: must not be empty"]
    return [f"{at}: {err.message}"]


def validate(cfg: Any, source: str = "config") -> None:
    """Raise UserError listing every schema violation of ``cfg`` (key path, value, expectation)."""
    import jsonschema

    s = schema()
    validator = jsonschema.Draft202012Validator(s)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    lines: list[str] = []
    for err in errors:
        for line in _format_error(err):
            if line not in lines:
                lines.append(line)
    raise UserError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines))


# ----------------------------------------------------------------------------------------------------


def load_config(path: str | Path | None, overrides: Iterable[str] | None = None) -> dict:
    """Load a YAML config, apply ``--set`` overrides, fill defaults and validate; returns a plain dict.

    ``path=None`` starts from the defaults alone (then ``model.num_classes`` must come from overrides).
    """
    if path is None:
        user: Any = {}
        source = "config"
    else:
        user = load_yaml(path)
        source = str(path)
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise UserError(
                f"{path}: expected a mapping with seed/model/data/train/eval sections, "
                f"got {_yaml_type(user)}"
            )
    return resolve_config(user, overrides, source)


def resolve_config(
    user: dict, overrides: Iterable[str] | None = None, source: str = "config"
) -> dict:
    """``user`` (a config mapping, e.g. the one a checkpoint holds) with the overrides applied, the
    defaults filled in and validated, as load_config does for a file."""
    cfg = _deep_merge(defaults(), user)
    cfg = apply_overrides(cfg, overrides or [])
    _fill_num_classes(cfg)
    validate(cfg, source)
    _check_semantics(cfg, source)
    _apply_eval_preset(cfg, source)
    return cfg


def _fill_num_classes(cfg: dict) -> None:
    """A folder dataset's model.num_classes, when the config leaves it out: the number of names in
    DATA_ROOT/classes.yaml (so one run config serves any such dataset)."""
    data, model = cfg.get("data"), cfg.get("model")
    if not (
        isinstance(data, dict)
        and isinstance(model, dict)
        and data.get("dataset") == "folder"
        and model.get("num_classes") is None
        and isinstance(data.get("root"), str)
    ):
        return
    from .data.folder import read_classes

    model["num_classes"] = len(read_classes(data["root"]).names)


def _apply_eval_preset(cfg: dict, source: str) -> None:
    """``eval.preset`` sets ``eval.scales`` and ``eval.flip`` (srcr.engine.inference.EVAL_PRESETS);
    scales or flip set to something else beside a preset is an error, not a silent override."""
    from .engine.inference import EVAL_PRESETS

    ev = cfg["eval"]
    preset = ev.get("preset")
    if preset is None:
        return
    want = EVAL_PRESETS[preset]
    given = {"scales": [float(x) for x in ev["scales"]], "flip": bool(ev["flip"])}
    if given not in (EVAL_PRESETS["ss"], want):
        raise UserError(
            f"{source}: eval.preset {preset} sets eval.scales to {want['scales']} and "
            f"eval.flip to {str(want['flip']).lower()}, but they are set to "
            f"{ev['scales']} and {str(ev['flip']).lower()}; drop one or the other"
        )
    ev["scales"], ev["flip"] = list(want["scales"]), want["flip"]


def _check_semantics(cfg: dict, source: str) -> None:
    """Constraints JSON schema cannot express."""
    problems = []
    lo, hi = cfg["data"]["train_pipeline"]["ratio_range"]
    if lo > hi:
        problems.append(f"data.train_pipeline.ratio_range: {[lo, hi]} has min > max")
    ev = cfg["eval"]
    if ev["mode"] == "slide":
        for i, (s, c) in enumerate(zip(ev["stride"], ev["crop_size"])):
            if s > c:
                problems.append(
                    f"eval.stride[{i}]: {s} is larger than eval.crop_size[{i}] = {c} "
                    "(sliding windows would leave gaps)"
                )
    if problems:
        raise UserError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems))


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if isinstance(cfg, dict) and cfg:
        out: dict[str, Any] = {}
        for k, v in cfg.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: cfg}


def config_diff_under(
    a: dict, b: dict, under: Iterable[str], ignore: Iterable[str] = ()
) -> list[str]:
    """The keys of ``config_diff(a, b, ignore)`` at or below any of the dotted keys ``under``."""
    under = tuple(under)
    return [
        k for k in config_diff(a, b, ignore) if any(k == u or k.startswith(u + ".") for u in under)
    ]


def config_diff(a: dict, b: dict, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two configs (keys present in one only included)."""
    fa, fb = flatten(a), flatten(b)
    ignore = set(ignore)
    out = []
    for key in sorted(set(fa) | set(fb)):
        if key in ignore or any(key.startswith(i + ".") for i in ignore):
            continue
        if fa.get(key, _MISSING) != fb.get(key, _MISSING):
            out.append(key)
    return out
