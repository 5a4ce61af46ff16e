"""`srcr train`: iteration-based, resumable, deterministic training from a config.

The data order and every augmentation are a pure function of (seed, iteration) (see
srcr.engine.sampler); dropout / drop-path draw from torch's generator, reseeded from (seed, iteration,
rank) at every step, and the contrastive loss's anchor sampling from a generator seeded the same way.
A run killed at any point and restarted on the same RUN_DIR therefore resumes from its newest
checkpoint and ends, on CPU, with exactly the weights of an uninterrupted run.

Under torchrun each rank takes its slice of the global batch (identical sample stream), BatchNorm
becomes SyncBN, and rank 0 writes the log and checkpoints.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

from .errors import UserError

# Separate derive_seed streams, so no two uses of the base seed share random numbers.
STREAM_TORCH = 0x7041
STREAM_CONTRAST = 0x7042
STREAM_WORKER = 0x7043
STREAM_LOADER = 0x7044

# Keys that may differ between a run directory's saved config and a restart without changing results.
RESUME_IGNORED_KEYS = ("data.num_workers",)


class TrainingDiverged(UserError):
    """A loss term became non-finite; carries the iteration and the term."""

    def __init__(self, message: str, iteration: int, term: str):
        super().__init__(message)
        self.iteration = iteration
        self.term = term


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see config/default.yaml)")
    parser.add_argument("--out", required=True, help="run directory (resumed if it holds checkpoints)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, value parsed as YAML (repeatable), "
                             "e.g. --set train.iterations=200")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: SRCR_THREADS, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="device (default: CUDA when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .engine.distributed import cleanup, init_distributed
    from .utils.threads import set_threads

    cfg = load_config(args.config, args.overrides)
    set_threads(args.threads)
    ctx = init_distributed(args.device)
    try:
        train(cfg, Path(args.out), ctx=ctx, progress=not args.no_progress)
    finally:
        cleanup(ctx)
    return 0


# ----------------------------------------------------------------------------------------------------


def _say(ctx, msg: str) -> None:
    if ctx.is_main:
        print(msg, file=sys.stderr, flush=True)


def _check_run_dir_config(cfg: dict, out: Path) -> None:
    """A restarted run must use the configuration it was started with."""
    from .config import config_diff, flatten, load_yaml

    saved_path = out / "config.yaml"
    if not saved_path.exists():
        return
    saved = load_yaml(saved_path)
    if not isinstance(saved, dict):
        raise UserError(f"{saved_path}: not a config mapping; remove it or use a new --out")
    diff = config_diff(saved, cfg, ignore=RESUME_IGNORED_KEYS)
    if diff:
        fs, fc = flatten(saved), flatten(cfg)
        lines = [f"{k}: saved {fs.get(k, '<absent>')!r}, now {fc.get(k, '<absent>')!r}" for k in diff]
        raise UserError(f"{out} holds a run started with a different configuration; differing keys:\n  "
                        + "\n  ".join(lines)
                        + "\nrestart with the saved values (see config.yaml there) or use a new --out")


def _seed_worker(worker_id: int) -> None:
    # Augmentation draws from the per-sample seed; this only pins any other randomness in workers.
    import random

    import numpy as np
    import torch

    seed = torch.initial_seed() % 2**63
    random.seed(seed)
    np.random.seed(seed % 2**32)


def build_train_dataset(cfg: dict, ctx=None):
    """The training split with its augmentation pipeline (generating the synthetic set if needed)."""
    from .data import build_dataset
    from .data.transforms import build_train_transforms
    from .engine.distributed import barrier

    data = cfg["data"]
    if data["dataset"] == "synthetic" and (ctx is None or ctx.is_main):
        from .data.synthetic_gen import ensure_synthetic

        syn = data["synthetic"]
        ensure_synthetic(data["root"], syn["n_train"], syn["n_val"], tuple(syn["size"]), syn["seed"])
    if ctx is not None:
        barrier(ctx)
    ds = build_dataset(data["dataset"], data["root"], "train",
                       transforms=build_train_transforms(data))
    if ds.num_classes != cfg["model"]["num_classes"]:
        raise UserError(f"model.num_classes is {cfg['model']['num_classes']} but the {data['dataset']} "
                        f"dataset at {data['root']} has {ds.num_classes} classes")
    return ds


def train(cfg: dict, out: Path, ctx=None, progress: bool = True) -> dict:
    """Train (or resume, or report completion of) the run in ``out``. Returns a summary dict."""
    import torch
    from torch.utils.data import DataLoader

    from . import __version__
    from .config import dump_config
    from .engine.checkpoint import (FINAL_NAME, latest_checkpoint, load_checkpoint, save_checkpoint,
                                    save_final)
    from .engine.distributed import DistContext, any_flag, barrier, convert_sync_batchnorm
    from .engine.logging import JsonlLog
    from .engine.sampler import InfiniteBatchSampler, InfiniteSeededSampler
    from .losses import NonFiniteLoss, build_criterion
    from .models.segmentor import build_model
    from .optim import apply_lr, build_optimizer, check_schedule, lr_factor
    from .utils.io import write_text
    from .utils.seed import derive_seed, seed_everything

    ctx = ctx or DistContext()
    out = Path(out)
    ckpt_dir = out / "checkpoints"
    tcfg = cfg["train"]
    total = int(tcfg["iterations"])
    seed = int(cfg["seed"])
    check_schedule(tcfg["schedule"], total)  # fail before any work
    criterion = build_criterion(tcfg["loss"], cfg["model"]["num_classes"])

    _check_run_dir_config(cfg, out)
    if (ckpt_dir / FINAL_NAME).exists():
        _say(ctx, f"run in {out} is already complete ({total} iterations): {ckpt_dir / FINAL_NAME}")
        return {"status": "complete", "iteration": total, "final": str(ckpt_dir / FINAL_NAME)}
    if tcfg["batch_size"] % ctx.world_size:
        raise UserError(f"train.batch_size: the global batch {tcfg['batch_size']} is not divisible by the "
                        f"{ctx.world_size} processes")
    barrier(ctx)  # every rank has checked before rank 0 writes
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "config.yaml").exists():
            write_text(out / "config.yaml", dump_config(cfg))
        # temporary files of a checkpoint being written when a previous process was killed
        for stale in ckpt_dir.glob(".*.tmp") if ckpt_dir.is_dir() else ():
            stale.unlink(missing_ok=True)

    device = ctx.device
    cuda = device.type == "cuda"
    seed_everything(seed)
    if not cuda:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True

    dataset = build_train_dataset(cfg, ctx)

    seed_everything(seed)  # identical initialisation on every rank and on resume
    model = build_model(cfg["model"]).to(device)
    if ctx.distributed:
        model = convert_sync_batchnorm(model, device)
    channels_last = bool(tcfg["channels_last"])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = criterion.to(device)
    optimizer = build_optimizer(model, tcfg["optimizer"])

    start = 0
    log_window: dict = {"count": 0, "sums": {}, "time": 0.0, "images": 0}
    resume_path = latest_checkpoint(ckpt_dir)
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path, map_location=device)
        if isinstance(ckpt.get("config"), dict):
            from .config import config_diff

            diff = config_diff(ckpt["config"], cfg, ignore=RESUME_IGNORED_KEYS)
            if diff:
                raise UserError(f"{resume_path} was written with a different configuration (differing keys: "
                                f"{', '.join(diff)}); use a new --out")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["iteration"])
        log_window = ckpt.get("log_window", log_window)
        _say(ctx, f"resuming {out} from {resume_path.name} (iteration {start} of {total})")

    n_params = sum(p.numel() for p in model.parameters())
    _say(ctx, f"training {cfg['model']['backbone']} + {cfg['model']['align']} + {cfg['model']['context']} "
              f"({n_params / 1e6:.2f} M parameters) on {len(dataset)} {cfg['data']['dataset']} images, "
              f"{total} iterations x {tcfg['batch_size']} images, {ctx.world_size} process(es) on {device.type}")
    train_model = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if cuda else None)
    train_model.train()

    sampler = InfiniteSeededSampler(len(dataset), seed, tcfg["batch_size"], ctx.rank, ctx.world_size, start)
    loader_gen = torch.Generator()
    loader_gen.manual_seed(derive_seed(seed, STREAM_LOADER, start, ctx.rank))
    num_workers = int(cfg["data"]["num_workers"])
    loader = DataLoader(dataset, batch_sampler=InfiniteBatchSampler(sampler), num_workers=num_workers,
                        worker_init_fn=_seed_worker, generator=loader_gen, pin_memory=cuda,
                        persistent_workers=False)

    log = JsonlLog(out / "log.jsonl", resume_iteration=start) if ctx.is_main else None
    bar = None
    if ctx.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc=f"train {out.name}", file=sys.stderr,
                   dynamic_ncols=True, unit="it")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (cuda and tcfg["amp"]) else contextlib.nullcontext()
    grad_clip = tcfg["grad_clip"]
    params = [p for p in model.parameters() if p.requires_grad]
    global_images = tcfg["batch_size"]

    def checkpoint_state(iteration: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration,
                "config": cfg, "rng": {"torch": torch.get_rng_state()}, "log_window": log_window,
                "srcr_version": __version__}

    data_iter = iter(loader)
    it = start
    try:
        while it < total:
            t0 = time.perf_counter()
            batch = next(data_iter)
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True).long()
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)

            torch.manual_seed(derive_seed(seed, STREAM_TORCH, it, ctx.rank))
            gen = torch.Generator(device=device)
            gen.manual_seed(derive_seed(seed, STREAM_CONTRAST, it, ctx.rank))
            apply_lr(optimizer, lr_factor(it, tcfg["schedule"], total))

            bad = None
            with amp:
                outputs = train_model(images)
            outputs = {k: v.float() for k, v in outputs.items()}
            try:
                loss, terms = criterion(outputs, labels, it, gen)
            except NonFiniteLoss as e:
                bad = (e.term, e.value)
            if any_flag(ctx, bad is not None):
                bad = bad or ("(another rank)", float("nan"))
                raise _diverged(it + 1, bad[0], bad[1], ckpt_dir, log)

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
                if any_flag(ctx, not bool(torch.isfinite(norm))):
                    raise _diverged(it + 1, "gradient norm", float(norm), ckpt_dir, log)
            optimizer.step()
            it += 1

            dt = time.perf_counter() - t0
            log_window["count"] += 1
            log_window["time"] += dt
            log_window["images"] += global_images
            terms = {"loss": float(loss.detach()), **terms}
            for k, v in terms.items():
                log_window["sums"][k] = log_window["sums"].get(k, 0.0) + v
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            if it % tcfg["log_interval"] == 0 or it == total:
                n = max(log_window["count"], 1)
                record = {"iteration": it, "lr": optimizer.param_groups[0]["lr"]}
                record.update({k: v / n for k, v in _mean_over_ranks(ctx, log_window["sums"]).items()})
                record["images_per_s"] = log_window["images"] / max(log_window["time"], 1e-9)
                if log is not None:
                    log.write(record)
                log_window = {"count": 0, "sums": {}, "time": 0.0, "images": 0}
            if it % tcfg["checkpoint_interval"] == 0 or it == total:
                if ctx.is_main:
                    save_checkpoint(ckpt_dir, it, checkpoint_state(it), int(tcfg["keep_checkpoints"]))
                barrier(ctx)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
        del data_iter

    final = ckpt_dir / FINAL_NAME
    if ctx.is_main:
        save_final(ckpt_dir, {"model": model.state_dict(), "iteration": total, "config": cfg,
                              "srcr_version": __version__})
        _say(ctx, f"finished {total} iterations: {final}")
    barrier(ctx)
    return {"status": "trained", "iteration": total, "resumed_from": start, "final": str(final)}


def _mean_over_ranks(ctx, sums: dict) -> dict:
    """Loss sums averaged over DDP ranks, so the log shows the global batch's losses."""
    if not ctx.distributed or not sums:
        return sums
    import torch
    import torch.distributed as dist

    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / ctx.world_size).tolist()))


def _diverged(iteration: int, term: str, value: float, ckpt_dir: Path, log) -> TrainingDiverged:
    from .engine.checkpoint import list_checkpoints

    ckpts = list_checkpoints(ckpt_dir)
    where = (f"the last good checkpoint, {ckpts[-1][1]} (iteration {ckpts[-1][0]}), is kept"
             if ckpts else "no checkpoint had been written yet")
    if log is not None:
        log.write({"iteration": iteration, "error": "non-finite loss", "term": term,
                   "value": value if math.isfinite(value) else str(value)})
    return TrainingDiverged(
        f"non-finite loss at iteration {iteration}: term '{term}' = {value}; training stopped and "
        f"{where}. Lower train.optimizer.lr or set train.grad_clip, then start a new run.",
        iteration, term)
