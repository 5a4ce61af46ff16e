"""`srcr bench model`: the efficiency card of one config's model: latency of the whole model's
forward beside its counted GFLOPs, so a measured speed sits next to the FLOPs a paper quotes.

Protocol (printed with the figures and kept in the JSON): the inference model of ``srcr flops``
(eval mode, auxiliary and embedding heads dropped, random weights: speed does not depend on them),
run as ``srcr evaluate`` runs it (srcr.engine.inference.infer_logits: whole image, or sliding
windows of eval.crop_size / eval.stride with ``--mode slide``; logits resized to the input) on a
random batch under torch.no_grad, in fp32 or under bf16 autocast (srcr.engine.amp, as training).
Latency is the median of ``--repeats`` timed forwards after ``--warmup`` untimed ones (the device
synchronised around each). GFLOPs are fvcore's count of the same model (srcr.flops: one
multiply-add = one FLOP) per image, times the windows in slide mode; achieved GFLOP/s = counted
GFLOPs of the batch / median latency. Peak memory: torch's peak allocation on CUDA over the timed
forwards; on the CPU the process's peak resident set (everything the process ever held).

    srcr bench model --config config/cityscapes_mscan_s.yaml [--size 1024x2048] [--batch 1]
        [--dtype fp32|bf16] [--mode whole|slide] [--repeats 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from ..errors import UserError

DTYPES = ("fp32", "bf16")
MODES = ("whole", "slide")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (YAML value); repeatable",
    )
    parser.add_argument(
        "--size", default=None, help="input HxW (default: the dataset's whole image, as srcr flops)"
    )
    parser.add_argument("--batch", type=int, default=1, help="images per forward (default 1)")
    parser.add_argument(
        "--dtype",
        default="fp32",
        choices=DTYPES,
        help="fp32, or bf16 autocast as train.amp (default fp32)",
    )
    parser.add_argument(
        "--mode",
        default="whole",
        choices=MODES,
        help="whole image, or slide windows of eval.crop_size / eval.stride",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed forwards (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards first (default 3)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--json", default=None, metavar="OUT", help="also write the card as JSON (atomically)"
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.distributed import pick_device
    from ..flops import default_size, parse_size
    from ..utils.io import write_json
    from ..utils.threads import set_threads

    check_counts(args.batch, args.repeats, args.warmup)
    cfg = load_config(args.config, args.overrides)
    size = parse_size(args.size) if args.size else default_size(cfg)
    set_threads(args.threads)
    card = bench_model(
        cfg,
        size,
        args.batch,
        args.dtype,
        args.mode,
        args.repeats,
        args.warmup,
        pick_device(args.device),
    )
    card.update(config=str(args.config), overrides=list(args.overrides))
    print(format_card(card))
    if args.json:
        write_json(args.json, card)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def check_counts(batch: int, repeats: int, warmup: int) -> None:
    if batch < 1 or repeats < 1 or warmup < 0:
        raise UserError(
            f"--batch and --repeats must be >= 1 and --warmup >= 0; got batch {batch}, "
            f"repeats {repeats}, warmup {warmup}"
        )


def slide_windows(size, crop_size, stride) -> int:
    """How many windows srcr.engine.inference.slide_logits runs on an image of ``size``."""
    grids = [max(s - c + st - 1, 0) // st + 1 for s, c, st in zip(size, crop_size, stride)]
    return grids[0] * grids[1]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device) -> tuple[float, str]:
    """(MB, what was measured): torch's peak CUDA allocation, else the process's peak RSS."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(
            device
        ) / 2**20, "peak CUDA memory allocated by torch"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak RSS of the process, CPU"


def bench_model(
    cfg: dict, size, batch: int, dtype: str, mode: str, repeats: int, warmup: int, device
) -> dict[str, Any]:
    """Time and count the inference model of ``cfg`` at ``size`` (H, W); the card as a dict."""
    import torch

    from ..engine.amp import autocast
    from ..engine.inference import infer_logits
    from ..flops import inference_model_cfg, model_flops
    from ..models.segmentor import build_model
    from ..utils.machine import machine_info

    if dtype not in DTYPES or mode not in MODES:
        raise UserError(
            f"dtype must be one of {DTYPES} and mode one of {MODES}; got {dtype!r}, {mode!r}"
        )
    ev, num_classes = cfg["eval"], int(cfg["model"]["num_classes"])
    crop, stride = (
        (tuple(ev["crop_size"]), tuple(ev["stride"])) if mode == "slide" else (None, None)
    )
    windows = slide_windows(size, crop, stride) if mode == "slide" else 1
    # a window is the crop, cut to the image where the image is smaller (as slide_logits)
    window = tuple(min(s, c) for s, c in zip(size, crop)) if mode == "slide" else tuple(size)
    counted = model_flops(cfg["model"], window)
    torch.manual_seed(0)
    model = build_model(inference_model_cfg(cfg["model"])).to(device).eval()
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward():
        with autocast("always" if dtype == "bf16" else False, device):
            infer_logits(model, images, num_classes, mode, crop, stride)

    times = []
    with torch.no_grad():
        for _ in range(warmup):
            forward()
        _sync(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            forward()
            _sync(device)
            times.append(time.perf_counter() - t0)
    latency = statistics.median(times)
    memory, memory_what = peak_memory_mb(device)
    gflops_image = counted["gflops"] * windows
    return {
        "model": counted["model"],
        "size": list(size),
        "batch": batch,
        "dtype": dtype,
        "mode": mode,
        "windows_per_image": windows,
        "crop_size": list(crop) if crop else None,
        "stride": list(stride) if stride else None,
        "repeats": repeats,
        "warmup": warmup,
        "latency_ms": 1e3 * latency,
        "latency_runs_ms": [1e3 * t for t in times],
        "images_per_s": batch / latency,
        "gflops_per_image": gflops_image,
        "params": counted["params"],
        "achieved_gflops_per_s": gflops_image * batch / latency,
        "peak_memory_mb": memory,
        "peak_memory_measures": memory_what,
        "protocol": protocol(batch, dtype, mode, windows, repeats, warmup),
        "machine": machine_info(device),
    }


def protocol(batch: int, dtype: str, mode: str, windows: int, repeats: int, warmup: int) -> str:
    how = "whole image" if mode == "whole" else f"slide inference, {windows} windows per image"
    prec = "fp32" if dtype == "fp32" else "bf16 autocast (offsets, grids, softmaxes in fp32)"
    return (
        f"batch {batch}, {prec}, {how}, eval mode, auxiliary and embedding heads dropped, random "
        f"weights and images, torch.no_grad; median of {repeats} forwards after {warmup} warm-up; "
        f"GFLOPs: fvcore count of the same model, 1 multiply-add = 1 FLOP"
    )


def format_card(c: dict) -> str:
    m = c["model"]
    lines = [
        f"{m['backbone']} + {m['align']} + {m['context']} (fpn_dim {m['fpn_dim']}) at "
        f"{c['batch']}x3x{c['size'][0]}x{c['size'][1]} on {c['machine']['gpu'] or 'cpu'}",
        f"  latency        {c['latency_ms']:10.2f} ms   (min {min(c['latency_runs_ms']):.2f}, "
        f"max {max(c['latency_runs_ms']):.2f})",
        f"  throughput     {c['images_per_s']:10.2f} images/s",
        f"  GFLOPs         {c['gflops_per_image']:10.2f} per image",
        f"  achieved       {c['achieved_gflops_per_s']:10.1f} GFLOP/s",
        f"  parameters     {c['params'] / 1e6:10.2f} M",
        f"  peak memory    {c['peak_memory_mb']:10.0f} MB   ({c['peak_memory_measures']})",
        f"  protocol: {c['protocol']}",
    ]
    return "\n".join(lines)


__all__ = ["configure", "run", "bench_model", "format_card", "slide_windows", "check_counts"]
