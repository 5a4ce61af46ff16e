"""`srcr bench modules`: latency and GFLOPs of every alignment and context module, side by side.

Alignment modules run at the decoder's stride-4 step (the costliest): low = 1 x D x H/4 x W/4 and
high = 1 x D x H/8 x W/8 (D = --fpn-dim; 1x256x256x512 and 1x256x128x256 for a 1024x2048 input).
Context modules run at stride 32 on MSCAN-S's four maps (64, 128, 320, 512 channels at strides
4, 8, 16, 32) with D output channels. Modules are built as the decoder builds them (decoder norm
'bn'), in eval mode, under torch.no_grad; latency is the median of --repeats timed runs after
--warmup untimed ones, the timed runs interleaved round-robin over the modules (so load from
other jobs on a shared machine falls on all of them alike); GFLOPs follow `srcr flops` (srcr.flops.count_flops: one multiply-add = one
FLOP). Ratios are relative to --align-ref (FAM) and --context-ref (PPM).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError

MSCAN_S_CHANNELS = (64, 128, 320, 512)
STRIDES = (4, 8, 16, 32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_module(
    fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device
) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    return times


def top_ops(fn: Callable[[], Any], n: int = 6) -> list[tuple[str, float, float]]:
    """(op, self CPU ms, share) of the ``n`` most expensive operators of one call (torch.profiler)."""
    # the legacy (non-kineto) CPU profiler: enough for self times, and it does not log to stderr
    with torch.no_grad(), torch.autograd.profiler.profile(use_kineto=False) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / 1e3, e.self_cpu_time_total / total) for e in events[:n]]


def _names(text: str | None, table: dict, kind: str) -> list[str]:
    if text is None:
        return sorted(table)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in table]
    if unknown or not names:
        raise UserError(
            f"--{kind}: unknown module(s) {unknown or text!r}; expected a comma list of: "
            f"{', '.join(sorted(table))}"
        )
    return names


def bench(
    size: tuple[int, int],
    fpn_dim: int,
    repeats: int,
    warmup: int,
    device: torch.device,
    align_names: list[str],
    context_names: list[str],
    align_ref: str,
    context_ref: str,
    profile: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Build, count and time every module; returns the JSON-able result."""
    from tqdm import tqdm

    from ..flops import count_flops
    from ..models.decoder import build_align, build_context

    H, W = size
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device)

    low = rand(1, fpn_dim, -(-H // 4), -(-W // 4))
    high = rand(1, fpn_dim, -(-H // 8), -(-W // 8))
    feats = [rand(1, c, -(-H // s), -(-W // s)) for c, s in zip(MSCAN_S_CHANNELS, STRIDES)]

    jobs: list[tuple[str, str, Callable[[], nn.Module], tuple]] = [
        ("align", n, lambda n=n: build_align(n, fpn_dim, {}, "bn"), (low, high))
        for n in align_names
    ] + [
        (
            "context",
            n,
            lambda n=n: build_context(n, list(MSCAN_S_CHANNELS), fpn_dim, {}, "bn"),
            (feats,),
        )
        for n in context_names
    ]
    built = []
    for kind, name, make, inputs in jobs:
        torch.manual_seed(0)
        module = make().to(device).eval()
        built.append((kind, name, module, inputs, count_flops(module, inputs=inputs)))

    # Timed runs go round-robin over the modules, so that a change in machine load (other jobs on
    # a shared node) falls on every module alike instead of on whichever ran at the time.
    times: list[list[float]] = [[] for _ in built]
    with torch.no_grad():
        for _ in range(warmup):
            for _, _, module, inputs, _ in built:
                module(*inputs)
        _sync(device)
        for _ in tqdm(range(repeats), desc="bench modules", file=sys.stderr, disable=not progress):
            for i, (_, _, module, inputs, _) in enumerate(built):
                times[i] += time_module(lambda m=module, x=inputs: m(*x), 1, 0, device)

    rows: dict[str, list[dict[str, Any]]] = {"align": [], "context": []}
    for (kind, name, module, inputs, flops), t in zip(built, times):
        row = {
            "name": name,
            "latency_ms": 1e3 * statistics.median(t),
            "latency_min_ms": 1e3 * min(t),
            "latency_runs_ms": [1e3 * x for x in t],
            "gflops": flops["gflops"],
            "params": flops["params"],
            "by_operator_gflops": {k: v / 1e9 for k, v in flops["by_operator"].items()},
        }
        if profile and device.type == "cpu":
            row["top_ops"] = [
                {"op": op, "self_cpu_ms": ms, "share": sh}
                for op, ms, sh in top_ops(lambda m=module, x=inputs: m(*x))
            ]
        rows[kind].append(row)

    for kind, ref in (("align", align_ref), ("context", context_ref)):
        base = next((r for r in rows[kind] if r["name"] == ref), None)
        for r in rows[kind]:
            r["latency_ratio"] = r["latency_ms"] / base["latency_ms"] if base else None
            r["gflops_ratio"] = r["gflops"] / base["gflops"] if base and base["gflops"] else None
    return {
        "settings": {
            "size": [H, W],
            "fpn_dim": fpn_dim,
            "repeats": repeats,
            "warmup": warmup,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "align_inputs": {"low": list(low.shape), "high": list(high.shape)},
            "context_inputs": [list(f.shape) for f in feats],
            "align_ref": align_ref,
            "context_ref": context_ref,
        },
        "align": rows["align"],
        "context": rows["context"],
    }


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def format_result(result: dict[str, Any]) -> str:
    s = result["settings"]
    out = []
    for kind, title, ref in (
        (
            "align",
            f"alignment modules, stride-4 step: low {'x'.join(map(str, s['align_inputs']['low']))}, "
            f"high {'x'.join(map(str, s['align_inputs']['high']))}",
            s["align_ref"],
        ),
        (
            "context",
            "context modules, stride 32, MSCAN-S maps "
            + ", ".join("x".join(map(str, f)) for f in s["context_inputs"])
            + f" -> {s['fpn_dim']}",
            s["context_ref"],
        ),
    ):
        rows = result[kind]
        if not rows:
            continue
        table = [
            ("module", "median ms", "min ms", f"vs {ref}", "GFLOPs", f"vs {ref}", "params (K)")
        ]
        for r in rows:
            table.append(
                (
                    r["name"],
                    f"{r['latency_ms']:.2f}",
                    f"{r['latency_min_ms']:.2f}",
                    _fmt_ratio(r["latency_ratio"]),
                    f"{r['gflops']:.4g}",
                    _fmt_ratio(r["gflops_ratio"]),
                    f"{r['params'] / 1e3:.1f}",
                )
            )
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
        out.append(title)
        for i, t in enumerate(table):
            out.append(
                "  "
                + "  ".join(
                    [t[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(t[1:], widths[1:])]
                )
            )
            if i == 0:
                out.append("  " + "  ".join("-" * w for w in widths))
        for r in rows:
            if r.get("top_ops"):
                ops = ", ".join(f"{o['op']} {o['share'] * 100:.0f}%" for o in r["top_ops"])
                out.append(f"  {r['name']} top ops (self CPU): {ops}")
        out.append("")
    out.append(
        f"{s['device']}, {s['threads']} threads, median (and min) of {s['repeats']} interleaved runs after "
        f"{s['warmup']} warm-up, ratios of medians, "
        f"input {s['size'][0]}x{s['size'][1]}, torch {s['torch']}"
    )
    return "\n".join(out)


def configure(parser: argparse.ArgumentParser) -> None:
    from ..models import ALIGN_MODULES, CONTEXT_MODULES

    parser.add_argument(
        "--size", default="1024x2048", help="image HxW the module inputs derive from (1024x2048)"
    )
    parser.add_argument("--fpn-dim", type=int, default=256, help="decoder width D (256)")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed runs per module; the median is reported"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: SRCR_THREADS, "
        "SLURM_CPUS_PER_TASK, OMP_NUM_THREADS, else torch's default)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--align",
        default=None,
        help=f"comma list (default all: {', '.join(sorted(ALIGN_MODULES))})",
    )
    parser.add_argument(
        "--context",
        default=None,
        help=f"comma list (default all: {', '.join(sorted(CONTEXT_MODULES))})",
    )
    parser.add_argument(
        "--align-ref", default="fam", help="alignment module the ratios refer to (fam)"
    )
    parser.add_argument(
        "--context-ref", default="ppm", help="context module the ratios refer to (ppm)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also list each module's costliest operators (CPU)"
    )
    parser.add_argument(
        "--json", default=None, metavar="OUT", help="also write the figures as JSON (atomically)"
    )


def run(args: argparse.Namespace) -> int:
    from ..flops import parse_size
    from ..models import ALIGN_MODULES, CONTEXT_MODULES
    from ..utils.io import write_json
    from ..utils.threads import set_threads

    size = parse_size(args.size)
    if args.fpn_dim < 2:
        raise UserError(f"--fpn-dim: expected an integer >= 2, got {args.fpn_dim}")
    if args.repeats < 1 or args.warmup < 0:
        raise UserError(
            f"--repeats must be >= 1 and --warmup >= 0; got {args.repeats}, {args.warmup}"
        )
    set_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device: expected cpu or cuda[:N], got {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    align_names = _names(args.align, ALIGN_MODULES, "align")
    context_names = _names(args.context, CONTEXT_MODULES, "context")
    result = bench(
        size,
        args.fpn_dim,
        args.repeats,
        args.warmup,
        device,
        align_names,
        context_names,
        args.align_ref,
        args.context_ref,
        profile=args.profile,
    )
    print(format_result(result))
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
