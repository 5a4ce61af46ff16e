"""The readable summary (Markdown) of `srcr bench gpu`'s report (srcr.bench.gpu)."""

from __future__ import annotations

from ..utils.machine import describe


def format_summary(r: dict) -> str:
    lines = [
        f"# srcr bench gpu: {r['mode']}",
        "",
        f"{describe(r['machine'])}; {r['date']}; config {r['config']}, fixture images "
        f"{r['image_size'][0]}x{r['image_size'][1]}",
        "",
        "| check | passed | detail |",
        "|---|---|---|",
    ]
    lines += [
        f"| {c['name']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |" for c in r["checks"]
    ]
    for key, title in (
        ("train", "Training, one process"),
        ("ddp", "Training under torchrun --nproc_per_node 1 (DDP, SyncBN)"),
    ):
        if key in r:
            lines += ["", f"## {title}", "", *_train_lines(r[key])]
    if "eval" in r:
        e = r["eval"]
        lines += [
            "",
            "## Evaluation (srcr evaluate)",
            "",
            f"{e['images']} images, {e['mode']} inference (windows {e['crop_size']}, stride "
            f"{e['stride']}), fp32, full metric set: {e['seconds_per_image']:.2f} s per image "
            f"({e['inference_and_scoring_s']:.2f} s inference and scoring in all); peak memory "
            f"{e['peak_memory_mb']:.0f} MB ({e['peak_memory_measures']}); mIoU {e['mIoU']:.2f} "
            f"(a model trained a few iterations on random weights: a smoke figure)",
        ]
    if "forward" in r:
        lines += [
            "",
            "## Forward throughput (srcr bench model)",
            "",
            "| dtype | input | latency ms | GFLOPs | achieved TFLOP/s | peak memory MB |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for c in r["forward"]:
            lines.append(
                f"| {c['dtype']} | {c['batch']}x3x{c['size'][0]}x{c['size'][1]} | "
                f"{c['latency_ms']:.2f} | {c['gflops_per_image']:.4g} | "
                f"{c['achieved_tflops_per_s']:.4g} | {c['peak_memory_mb']:.0f} |"
            )
        lines += [""] + [f"Protocol ({c['dtype']}): {c['protocol']}." for c in r["forward"]]
    return "\n".join(lines) + "\n"


def _train_lines(t: dict) -> list[str]:
    phases = ", ".join(f"{p} {ms:.1f}" for p, ms in t["phase_ms"].items())
    crop = "x".join(map(str, t["crop_size"]))
    return [
        f"- {t['world_size']} process(es) x batch {t['batch_per_process']} at {crop}; "
        f"bf16 autocast {t['bf16_autocast']}, channels-last {t['channels_last']}, "
        f"fused {t['optimizer']} "
        f"{t['fused_optimizer']}, DDP {t['ddp']}, SyncBN {t['sync_bn']}"
        + (f", backend {t['backend']}" if "backend" in t else ""),
        f"- **{t['images_per_s']:.2f} images/s**; step {t['step_ms']:.1f} ms = {phases} ms "
        f"(mean of the last {t['timed_iterations']} of {t['iterations']} iterations)",
        f"- peak memory {t['peak_memory_mb']:.0f} MB ({t['peak_memory_measures']})",
        f"- loss {t['losses'][0]:.4f} -> {t['losses'][-1]:.4f}; last terms: "
        + ", ".join(f"{k} {v:.4f}" for k, v in t["last_terms"].items()),
    ]


__all__ = ["format_summary"]
