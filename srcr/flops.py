"""`srcr flops`: audited GFLOPs and parameter counts (fvcore), total and per module.

Convention (docs/metrics.md, "GFLOPs and parameters"): fvcore's FlopCountAnalysis, batch 1, eval
mode, whole-image input, no training-only heads (auxiliary FCN head, contrastive embedding head);
one multiply-add counts as one FLOP (fvcore's, SegNeXt's and mmsegmentation's unit);
GFLOPs = total / 1e9. Params = fvcore.nn.parameter_count.

What is counted, per operator (a handle each, see ``HANDLES``):

- convolutions: fvcore's count, batch x prod(weight shape) x output positions (bias ignored);
- matmul / mm / bmm / baddbmm / addmm / linear: numel(output) x the contracted length. This
  replaces fvcore's matmul handle, which undercounts when only the second operand carries batch
  dimensions ((n,k) @ (b,k,m) counted as n*k*m);
- einsum with two operands: numel(output) x the sizes of the summed-away indices (exact); more
  operands: numpy's optimal contraction path, halved (fvcore's rule);
- scaled_dot_product_attention (fvcore skips it): QK^T plus AV, batch x L x S x (E + Ev); the
  scaling and softmax are elementwise (ignored); a causal mask does not halve the count;
- norms: fvcore's rules (eval BatchNorm 2 per element with affine, 1 without; GroupNorm,
  LayerNorm 5 per element with affine, 4 without; InstanceNorm likewise);
- resampling, per output value and channel: bilinear 4 multiply-adds (the four corner weights),
  bicubic 16, nearest 1 (fvcore's upsample_nearest2d rule). The same for upsample_* and
  grid_sampler / grid_sampler_2d (the mode is read from the op); building the sampling grid
  (identity + offset / norm) is elementwise and ignored.

Left out, by the explicit list ``IGNORED_OPS``: elementwise arithmetic (so residual and lateral
additions, gating products, SRM's neighbour-weighted offset sum), activations, softmax,
reductions (means, norms), pooling (including adaptive average pooling, which fvcore would count),
comparisons, and pure data movement / tensor creation. Any other operator fvcore reports (a new
module's op, a custom autograd Function) makes the count fail with the operator's name and the
modules it occurs in, so nothing goes uncounted silently.
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .errors import UserError

__all__ = [
    "count_flops",
    "model_flops",
    "default_size",
    "parse_size",
    "IGNORED_OPS",
    "HANDLES",
    "UncountedOpsError",
    "SEGMENTOR_BREAKDOWN",
    "configure",
    "run",
]

# data.dataset -> whole-image (H, W) of the published FLOP counts
DATASET_SIZES: dict[str, tuple[int, int]] = {
    "cityscapes": (1024, 2048),
    "bdd100k": (720, 1280),
    "ade20k": (512, 512),
}

# (label, module path) of the per-module breakdown of a Segmentor (docs/architecture.md names)
SEGMENTOR_BREAKDOWN: list[tuple[str, str]] = [
    ("backbone", "backbone"),
    ("decoder.context", "decoder.context"),
    ("decoder.laterals", "decoder.laterals"),
    ("decoder.align.0 (s16)", "decoder.align.0"),
    ("decoder.align.1 (s8)", "decoder.align.1"),
    ("decoder.align.2 (s4)", "decoder.align.2"),
    ("decoder.fpn_convs", "decoder.fpn_convs"),
    ("decoder.fuse", "decoder.fuse"),
    ("head", "head"),
]
TRAINING_ONLY_HEADS = ("aux_head", "embed_head")


def _ops(category: str, names: str) -> dict[str, str]:
    return {f"aten::{n}": category for n in names.split()}


# Operators deliberately not counted, with the reason (category) for each.
IGNORED_OPS: dict[str, str] = {
    **_ops(
        "elementwise arithmetic",
        "add add_ sub sub_ rsub mul mul_ div div_ neg neg_ reciprocal exp exp_ log log_ pow sqrt rsqrt "
        "abs sign floor ceil round trunc frac clamp clamp_ clamp_min clamp_min_ clamp_max clamp_max_ "
        "where masked_fill masked_fill_ lerp addcmul addcdiv fill_ zero_ remainder floor_divide "
        "square sin cos erf",
    ),
    **_ops(
        "activation",
        "relu relu_ relu6 gelu gelu_ sigmoid sigmoid_ tanh tanh_ silu silu_ hardswish hardswish_ "
        "hardsigmoid hardsigmoid_ hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ selu softplus "
        "prelu mish mish_ threshold threshold_ glu",
    ),
    **_ops("softmax", "softmax _softmax log_softmax _log_softmax"),
    **_ops(
        "reduction",
        "mean sum max amax min amin argmax argmin linalg_vector_norm norm frobenius_norm "
        "std var prod cumsum logsumexp",
    ),
    **_ops(
        "pooling",
        "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool2d "
        "avg_pool1d avg_pool2d avg_pool3d max_pool1d max_pool2d max_pool3d "
        "max_pool2d_with_indices",
    ),
    **_ops(
        "comparison / logic",
        "eq ne gt ge lt le __and__ __or__ __xor__ bitwise_not bitwise_and "
        "bitwise_or logical_not logical_and logical_or isfinite isnan isinf",
    ),
    **_ops(
        "dropout (identity in eval mode)",
        "dropout dropout_ feature_dropout feature_dropout_ "
        "alpha_dropout alpha_dropout_ feature_alpha_dropout",
    ),
    **_ops(
        "data movement / shape",
        "cat concat stack chunk split split_with_sizes unbind narrow slice select index index_select "
        "gather scatter scatter_ index_put index_put_ masked_select take expand expand_as repeat "
        "repeat_interleave tile flip roll permute transpose t numpy_T mT mH movedim swapaxes reshape "
        "reshape_as view view_as flatten unflatten squeeze squeeze_ unsqueeze unsqueeze_ contiguous "
        "clone copy_ detach detach_ alias as_strided pad constant_pad_nd reflection_pad1d "
        "reflection_pad2d replication_pad1d replication_pad2d replication_pad3d circular_pad2d im2col "
        "col2im pixel_shuffle pixel_unshuffle channel_shuffle diag diagonal diag_embed tril triu "
        "nonzero",
    ),
    **_ops(
        "tensor creation",
        "arange linspace logspace meshgrid empty empty_like new_empty zeros zeros_like "
        "new_zeros ones ones_like new_ones full full_like new_full eye scalar_tensor "
        "tensor lift_fresh rand randn rand_like randn_like",
    ),
    # drop path's per-sample keep mask in training mode (srcr bench train and srcr cost count the
    # training forward); the mask's multiply is elementwise
    **_ops("random draws", "bernoulli bernoulli_"),
    **_ops(
        "type / metadata",
        "to type_as float double half bfloat16 int long bool Int Float Bool "
        "ScalarImplicit size numel dim item",
    ),
}


# ---------------------------------------------------------------------------------------------
# Handles: fn(inputs: list[torch._C.Value], outputs: list[torch._C.Value]) -> number of MACs


def _shape(v: Any) -> list[int] | None:
    t = v.type()
    if not hasattr(t, "sizes"):
        return None
    sizes = t.sizes()
    return None if sizes is None else list(sizes)


def _numel(v: Any) -> int:
    shape = _shape(v)
    if shape is None:
        raise RuntimeError(f"flop handle: no static shape for {v.debugName()}")
    return math.prod(shape)


def _contracted(arg: int) -> Callable[[list, list], int]:
    """numel(output) x the last dim of input ``arg``: each output value is one dot product."""

    def handle(inputs: list, outputs: list) -> int:
        shape = _shape(inputs[arg])
        return _numel(outputs[0]) * shape[-1]

    return handle


def _linear(inputs: list, outputs: list) -> int:
    # aten::linear(input, weight, bias): weight is (out, in)
    return _numel(outputs[0]) * _shape(inputs[1])[-1]


def _einsum(inputs: list, outputs: list) -> int:
    equation = inputs[0].toIValue().replace(" ", "")
    operands = list(inputs[1].node().inputs())
    shapes = [_shape(v) for v in operands]
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) == 1:
        return 0  # a permutation or reduction of one operand: data movement / elementwise
    if len(terms) == 2:
        if "->" not in equation:  # implicit output: the letters that occur once
            letters = [c for c in lhs if c.isalpha()]
            rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        sizes: dict[str, int] = {}
        for term, shape in zip(terms, shapes):
            # letters before an ellipsis index from the front, those after it from the end
            head, _, tail = term.partition("...") if "..." in term else ("", "", term)
            for i, c in enumerate(head):
                sizes[c] = max(sizes.get(c, 1), shape[i])
            for i, c in enumerate(reversed(tail)):
                sizes[c] = max(sizes.get(c, 1), shape[len(shape) - 1 - i])
        summed = [c for c in sizes if c not in rhs]
        return _numel(outputs[0]) * math.prod(sizes[c] for c in summed)
    arrays = [np.zeros(s) for s in shapes]
    path = np.einsum_path(equation, *arrays, optimize="optimal")[1]
    for line in path.split("\n"):
        if "optimized flop" in line.lower():
            return int(float(line.split(":")[-1]) / 2)  # numpy counts multiply and add separately
    raise RuntimeError(f"einsum {equation!r}: cannot count")


def _sdpa(inputs: list, outputs: list) -> int:
    # aten::scaled_dot_product_attention(query (..., L, E), key (..., S, E), value (..., S, Ev), ...)
    q, k, v = (_shape(x) for x in inputs[:3])
    out = _shape(outputs[0])
    batch = math.prod(out[:-2])
    L, E, S, Ev = q[-2], q[-1], k[-2], v[-1]
    return batch * L * S * E + batch * L * S * Ev


_GRID_SAMPLE_MACS = {0: 4, 1: 1, 2: 16}  # interpolation_mode: bilinear, nearest, bicubic


def _grid_sampler(inputs: list, outputs: list) -> int:
    # aten::grid_sampler[_2d](input, grid, interpolation_mode, padding_mode, align_corners)
    mode = inputs[2].toIValue()
    if mode not in _GRID_SAMPLE_MACS:
        raise RuntimeError(f"grid_sampler: unknown interpolation mode {mode}")
    return _GRID_SAMPLE_MACS[mode] * _numel(outputs[0])


def _per_output(macs: int) -> Callable[[list, list], int]:
    def handle(inputs: list, outputs: list) -> int:
        return macs * _numel(outputs[0])

    return handle


def _import_fvcore():
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # fvcore scripts helpers with torch.jit at import
        import fvcore.nn
        import fvcore.nn.jit_handles  # noqa: F401
    return fvcore.nn


def _fvcore_handles() -> dict[str, Callable]:
    _import_fvcore()
    from fvcore.nn.jit_handles import batchnorm_flop_jit, conv_flop_jit, norm_flop_counter

    return {
        "aten::_convolution": conv_flop_jit,
        "aten::batch_norm": batchnorm_flop_jit,
        "aten::group_norm": norm_flop_counter(2),
        "aten::layer_norm": norm_flop_counter(2),
        "aten::instance_norm": norm_flop_counter(1),
    }


HANDLES: dict[str, Callable] = {
    "aten::matmul": _contracted(0),
    "aten::mm": _contracted(0),
    "aten::bmm": _contracted(0),
    "aten::addmm": _contracted(1),
    "aten::baddbmm": _contracted(1),
    "aten::linear": _linear,
    "aten::einsum": _einsum,
    "aten::scaled_dot_product_attention": _sdpa,
    "aten::grid_sampler": _grid_sampler,
    "aten::grid_sampler_2d": _grid_sampler,
    "aten::upsample_nearest1d": _per_output(1),
    "aten::upsample_nearest2d": _per_output(1),
    "aten::_upsample_nearest_exact2d": _per_output(1),
    "aten::upsample_linear1d": _per_output(2),
    "aten::upsample_bilinear2d": _per_output(4),
    "aten::upsample_bicubic2d": _per_output(16),
    **_fvcore_handles(),
}


class UncountedOpsError(UserError):
    """An operator is neither counted (HANDLES) nor on the documented IGNORED_OPS list."""


# ---------------------------------------------------------------------------------------------
# Counting


def _analysis(model: nn.Module, inputs: tuple):
    FlopCountAnalysis = _import_fvcore().FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.clear_op_handles()
    analysis.set_op_handle(**HANDLES)
    # Nothing is ignored inside fvcore (its own default ignore list included): every operator
    # without a handle comes back as "unsupported" and is sorted into IGNORED_OPS or an error here.
    analysis._ignored_ops = set()
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def _module_ops(analysis, modules: Iterable[str], unknown: set[str]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {op: [] for op in unknown}
    for name in modules:
        if not name:
            continue
        ops = analysis.unsupported_ops(name)
        for op in unknown:
            if ops.get(op):
                where[op].append(name)
    # report the innermost modules only
    return {
        op: [n for n in names if not any(o != n and o.startswith(n + ".") for o in names)]
        for op, names in where.items()
    }


def _shapes(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, (list, tuple)):
        return [_shapes(o) for o in obj]
    return repr(obj)


def count_flops(
    model: nn.Module,
    size: Sequence[int] | None = None,
    *,
    inputs: tuple | None = None,
    breakdown: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Count FLOPs (multiply-adds) and parameters of ``model`` in eval mode, batch 1.

    ``size`` (H, W) feeds one 1x3xHxW zero image (on the model's device and dtype); ``inputs``
    (a tuple of forward arguments) replaces it for modules with other signatures. ``breakdown``
    lists disjoint (label, module path) pairs for the per-module table (default: the Segmentor
    names present in ``model``, else its top-level children); the remainder, ops outside every
    listed module, is reported as ``(rest)``. Raises :class:`UncountedOpsError` when an operator
    is neither counted nor deliberately ignored.

    Returns ``{"flops", "gflops", "params", "inputs" (shapes), "modules": [{"name", "path", "flops",
    "gflops", "params"}], "by_operator": {op: flops}, "ignored_ops": {op: occurrences}}``.
    """
    parameter_count = _import_fvcore().parameter_count

    if (size is None) == (inputs is None):
        raise ValueError("count_flops: give exactly one of size or inputs")
    was_training = model.training
    model.eval()
    try:
        if inputs is None:
            inputs = (_zero_image(model, size),)
        analysis = _analysis(model, tuple(inputs))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit tracing deprecation / tracer warnings
            total = int(analysis.total())
        unsupported = analysis.unsupported_ops("")
        _raise_on_uncounted(analysis, unsupported)
        breakdown = _checked_breakdown(model, breakdown)
        params = parameter_count(model)
        modules = _module_rows(breakdown, analysis.by_module(), params)
        by_op = analysis.by_operator()
        return {
            "flops": total,
            "gflops": total / 1e9,
            "params": int(params.get("", 0)),
            "inputs": _shapes(inputs),
            "modules": modules,
            "by_operator": {k: int(v) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
            "ignored_ops": {k: int(v) for k, v in sorted(unsupported.items())},
        }
    finally:
        model.train(was_training)


def _zero_image(model: nn.Module, size: Sequence[int]) -> torch.Tensor:
    """A 1x3xHxW zero image on the model's device, in its floating dtype (float32 without one)."""
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.dtype.is_floating_point else torch.float32
    return torch.zeros(1, 3, int(size[0]), int(size[1]), device=device, dtype=dtype)


def _raise_on_uncounted(analysis: Any, unsupported: dict[str, int]) -> None:
    """UncountedOpsError naming every operator neither counted nor on IGNORED_OPS, and where."""
    unknown = {op for op in unsupported if op not in IGNORED_OPS}
    if not unknown:
        return
    where = _module_ops(analysis, analysis._named_modules.keys(), unknown)
    lines = [
        f"  {op} (x{unsupported[op]}) in {', '.join(where[op][:4]) or 'the top-level forward'}"
        for op in sorted(unknown)
    ]
    raise UncountedOpsError(
        "operators neither counted nor on the ignore list (add a handle to srcr.flops.HANDLES "
        "or, if it does no multiply-adds, a documented entry to srcr.flops.IGNORED_OPS):\n"
        + "\n".join(lines)
    )


def _checked_breakdown(
    model: nn.Module, breakdown: Sequence[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    """The (label, path) rows: as given (each path must exist, none inside another), else the
    Segmentor names present in ``model``, else its top-level children."""
    names = dict(model.named_modules())
    if breakdown is None:
        breakdown = [(label, path) for label, path in SEGMENTOR_BREAKDOWN if path in names]
        if not breakdown:
            breakdown = [(n, n) for n, _ in model.named_children()]
    paths = [p for _, p in breakdown]
    for a in paths:
        if a not in names:
            raise ValueError(f"count_flops: no module {a!r} in {type(model).__name__}")
        for b in paths:
            if a != b and b.startswith(a + "."):
                raise ValueError(f"count_flops: breakdown modules {a!r} and {b!r} overlap")
    return list(breakdown)


def _module_rows(
    breakdown: list[tuple[str, str]], by_module: dict[str, int], params: dict[str, int]
) -> list[dict[str, Any]]:
    """One row per breakdown module, then what each parent does itself (the decoder's fusion
    resizes, the final resize at the top level) as "<parent> (other)" rows, deepest parent first,
    and "(rest)" for the top level, so the rows add up to the total."""
    paths = [p for _, p in breakdown]
    modules = [
        {
            "name": label,
            "path": path,
            "flops": int(by_module.get(path, 0)),
            "params": int(params.get(path, 0)),
        }
        for label, path in breakdown
    ]
    parents = sorted(
        {".".join(p.split(".")[:i]) for p in paths for i in range(1, p.count(".") + 1)},
        key=lambda a: -a.count("."),
    )
    for parent in parents + [""]:
        under = [m for m in modules if parent == "" or m["path"].startswith(parent + ".")]
        own_f = int(by_module.get(parent, 0)) - sum(m["flops"] for m in under)
        own_p = int(params.get(parent, 0)) - sum(m["params"] for m in under)
        if own_f or own_p:
            modules.append(
                {
                    "name": f"{parent} (other)" if parent else "(rest)",
                    "path": parent,
                    "flops": own_f,
                    "params": own_p,
                }
            )
    for m in modules:
        m["gflops"] = m["flops"] / 1e9
    return modules


# ---------------------------------------------------------------------------------------------
# Whole models from a config


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", str(text))
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise UserError(
            f"--size: expected HxW with positive integers (e.g. 1024x2048), got {text!r}"
        )
    return int(m[1]), int(m[2])


def default_size(cfg: dict) -> tuple[int, int]:
    """The whole-image input of a config's dataset: Cityscapes 1024x2048, BDD100K 720x1280,
    ADE20K 512x512, synthetic: data.synthetic.size, folder (images of any size):
    data.train_pipeline.scale."""
    data = cfg.get("data") or {}
    dataset = data.get("dataset", "synthetic")
    if dataset in DATASET_SIZES:
        return DATASET_SIZES[dataset]
    if dataset == "synthetic":
        size = (data.get("synthetic") or {}).get("size")
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(s, int) for s in size)
        ):
            raise UserError(f"data.synthetic.size: expected [H, W], got {size!r}")
        return int(size[0]), int(size[1])
    if dataset == "folder":
        size = (data.get("train_pipeline") or {}).get("scale") or [1024, 2048]
        return int(size[0]), int(size[1])
    raise UserError(
        f"data.dataset: expected one of cityscapes, bdd100k, ade20k, synthetic, folder; "
        f"got {dataset!r}"
    )


def inference_model_cfg(model_cfg: dict) -> dict:
    """The model section for counting: no auxiliary or embedding head (training only), no weights."""
    cfg = copy.deepcopy(model_cfg)
    cfg["aux_head"] = False
    cfg["embed_dim"] = 0
    cfg["pretrained"] = None
    return cfg


def model_flops(model_cfg: dict, size: Sequence[int]) -> dict[str, Any]:
    """Build the inference model of a ``model:`` section on the CPU and count it at (H, W)."""
    from .models.segmentor import build_model

    torch.manual_seed(0)
    model = build_model(inference_model_cfg(model_cfg)).eval()
    for name in TRAINING_ONLY_HEADS:  # in case the builder keeps them anyway
        if getattr(model, name, None) is not None:
            setattr(model, name, None)
    result = count_flops(model, size)
    result["model"] = {
        k: model_cfg.get(k)
        for k in (
            "backbone",
            "backbone_options",
            "align",
            "align_options",
            "context",
            "context_options",
            "fpn_dim",
            "num_classes",
            "norm",
        )
    }
    return result


def format_table(result: dict[str, Any]) -> str:
    rows = [("module", "GFLOPs", "share", "params (M)")]
    total = result["flops"] or 1
    for m in result["modules"]:
        rows.append(
            (
                m["name"],
                f"{m['gflops']:.4g}",
                f"{100.0 * m['flops'] / total:.1f}%",
                f"{m['params'] / 1e6:.3f}",
            )
        )
    rows.append(("total", f"{result['gflops']:.4g}", "100.0%", f"{result['params'] / 1e6:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        lines.append(
            "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])
        )
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    ops = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in result["by_operator"].items())
    lines.append(f"by operator (GFLOPs): {ops}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="run config (YAML); only model: and data: are used"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (YAML value), e.g. --set model.align=fam; repeatable",
    )
    parser.add_argument(
        "--size",
        default=None,
        help="input HxW (default: the dataset's whole image: cityscapes 1024x2048, "
        "bdd100k 720x1280, ade20k 512x512, synthetic data.synthetic.size, "
        "folder data.train_pipeline.scale)",
    )
    parser.add_argument(
        "--json", default=None, metavar="OUT", help="also write the result as JSON (atomically)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    from . import __version__
    from .config import load_config
    from .utils.io import write_json
    from .utils.threads import set_threads

    set_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    size = parse_size(args.size) if args.size else default_size(cfg)
    print(
        f"counting {cfg['model'].get('backbone')} + {cfg['model'].get('align')} + "
        f"{cfg['model'].get('context')} at 1x3x{size[0]}x{size[1]} (eval, no aux/embed heads)...",
        file=sys.stderr,
    )
    result = model_flops(cfg["model"], size)
    import fvcore

    result.update(
        {
            "config": str(args.config),
            "overrides": list(args.overrides),
            "dataset": cfg.get("data", {}).get("dataset"),
            "size": list(size),
            "convention": "fvcore FlopCountAnalysis, batch 1, eval mode, no aux/embed heads, whole image; "
            "1 multiply-add = 1 FLOP; GFLOPs = total / 1e9; see srcr.flops docstring",
            "versions": {
                "srcr": __version__,
                "torch": torch.__version__,
                "fvcore": getattr(fvcore, "__version__", "unknown"),
            },
        }
    )
    print(f"{args.config}: input 1x3x{size[0]}x{size[1]}")
    print(format_table(result))
    print(f"GFLOPs {result['gflops']:.2f}   params {result['params'] / 1e6:.2f} M")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
