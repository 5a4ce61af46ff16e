"""`srcr train`: iteration-based, resumable, deterministic training from a config.

The data order and every augmentation are a pure function of (seed, iteration) (see
srcr.engine.sampler); dropout / drop-path draw from torch's generator, reseeded from (seed, iteration,
rank) at every step, and the contrastive loss's anchor sampling from a generator seeded the same way.
A run killed at any point and restarted on the same RUN_DIR therefore resumes from its newest
checkpoint and ends, on CPU, with exactly the weights of an uninterrupted run. SIGTERM or SIGUSR1
(a scheduler's preemption or time-limit warning) makes it write a checkpoint at the next iteration
boundary and exit with status 75 (srcr.errors.EXIT_INTERRUPTED), so nothing since the last
checkpoint interval is lost.

Progress: a tqdm bar on a terminal; in a log file one plain line per train.log_interval
(srcr.engine.progress). RUN_DIR/events.log keeps every start, resume, interruption and completion. When it finishes, RUN_DIR/summary.json records the training time, the
parameter count and the machine, before checkpoints/final.pth marks the run complete.

Under torchrun each rank takes its slice of the global batch (identical sample stream), BatchNorm
becomes SyncBN, and rank 0 writes the log and checkpoints.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

# Separate derive_seed streams, so no two uses of the base seed share random numbers.
STREAM_TORCH = 0x7041
STREAM_CONTRAST = 0x7042
STREAM_WORKER = 0x7043
STREAM_LOADER = 0x7044

# Keys that may differ between a run directory's saved config and a restart without changing results.
RESUME_IGNORED_KEYS = ("data.num_workers", "data.cache")


class TrainingDiverged(UserError):
    """A loss term became non-finite; carries the iteration and the term."""

    def __init__(self, message: str, iteration: int, term: str):
        super().__init__(message)
        self.iteration = iteration
        self.term = term


def configure(parser: argparse.ArgumentParser) -> None:
    from .cli_runs import add_set_and_run

    parser.add_argument("--config", required=True, help="YAML config (see config/default.yaml)")
    parser.add_argument(
        "--out", default=None, help="run directory (resumed if it holds checkpoints)"
    )
    add_set_and_run(
        parser,
        "RUN_DIR",
        run_help="instead of --out: one of several runs trained in this process on one data "
        "stream (they must share seed, data and batch size; on a frozen, equal "
        "backbone they share its forward)",
        set_help="override a config entry, value parsed as YAML (repeatable), "
        "e.g. --set train.iterations=200",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: SRCR_THREADS, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="device (default: CUDA when available)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .cli_runs import run_configs
    from .engine.distributed import cleanup, init_distributed
    from .utils.threads import set_threads

    if (args.out is None) == (not args.runs):
        raise UserError("srcr train: give either --out RUN_DIR or one --run RUN_DIR per run")
    runs = args.runs or [(args.out, [])]
    specs = [(cfg, Path(out)) for cfg, out in run_configs(args.config, args.overrides, runs)]
    set_threads(args.threads)
    ctx = init_distributed(args.device)
    try:
        train_runs(specs, ctx=ctx, progress=not args.no_progress)
    finally:
        cleanup(ctx)
    return 0


# ----------------------------------------------------------------------------------------------------


def _say(ctx, msg: str) -> None:
    if ctx.is_main:
        print(msg, file=sys.stderr, flush=True)


def _event(ctx, out: Path, msg: str) -> None:
    """Say ``msg`` and append it, timestamped, to RUN_DIR/events.log: the run's own history of
    starts, resumes, interruptions and completion (a workflow's log file is rewritten per attempt)."""
    _say(ctx, msg)
    if ctx.is_main:
        _record(out, msg)


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
        lines = [
            f"{k}: saved {fs.get(k, '<absent>')!r}, now {fc.get(k, '<absent>')!r}" for k in diff
        ]
        raise UserError(
            f"{out} holds a run started with a different configuration; differing keys:\n  "
            + "\n  ".join(lines)
            + "\nrestart with the saved values (see config.yaml there) or use a new --out"
        )


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
        ensure_synthetic(
            data["root"], syn["n_train"], syn["n_val"], tuple(syn["size"]), syn["seed"]
        )
    if ctx is not None:
        barrier(ctx)
    ds = build_dataset(
        data["dataset"],
        data["root"],
        "train",
        transforms=build_train_transforms(data),
        cache=bool(data.get("cache", False)),
    )
    _check_classes(ds, cfg)
    return ds


def _check_classes(ds, cfg: dict) -> None:
    data = cfg["data"]
    if ds.num_classes != cfg["model"]["num_classes"]:
        raise UserError(
            f"model.num_classes is {cfg['model']['num_classes']} but the {data['dataset']} "
            f"dataset at {data['root']} has {ds.num_classes} classes"
        )


def train(cfg: dict, out: Path, ctx=None, progress: bool = True) -> dict:
    """Train (or resume, or report completion of) the run in ``out``. Returns a summary dict."""
    return train_runs([(cfg, Path(out))], ctx=ctx, progress=progress)[0]


# Config keys every run trained in one process shares: they decide the batches (srcr.engine.sampler)
GROUP_KEYS = ("seed", "data", "train.batch_size")


def train_runs(specs: list[tuple[dict, Path]], ctx=None, progress: bool = True) -> list[dict]:
    """Train (or resume, or report completion of) each (config, run directory) of ``specs`` in this
    process, on one data stream; returns their summaries. With more than one run they must share
    the batches (GROUP_KEYS) and one process; on a frozen, equal backbone they also share its
    forward (srcr.models.feature_cache). Each directory ends exactly as a run of its own would
    leave it (tests/test_train_group.py).

    Every check that can fail on bad input (grouping, schedule, loss, run-dir config, dataset
    layout) runs before anything is written."""
    from .engine.distributed import DistContext, barrier
    from .engine.runlock import RunLocks

    ctx = ctx or DistContext()
    members = [_Member(cfg, Path(out)) for cfg, out in specs]
    _check_group(members, ctx)
    with RunLocks(ctx) as locks:
        locks.take([m.out for m in members if m.out.is_dir()])
        done = {m.out: r for m in members if (r := _prepare(m, ctx)) is not None}
        pending = [m for m in members if m.out not in done]
        if pending:
            try:
                dataset = build_train_dataset(pending[0].cfg, ctx)
                for m in pending[1:]:
                    _check_classes(dataset, m.cfg)
                barrier(ctx)  # every rank has checked before rank 0 writes
                for m in pending:
                    _init_run_dir(m.cfg, m.out, ctx)
                locks.take([m.out for m in pending])
                _set_determinism(ctx)
                _build_runs(pending, ctx)
                _train_and_finish(pending, ctx, dataset, progress)
            except BaseException as e:
                _record_failure(pending, ctx, e)
                raise
    return [done.get(m.out) or m.summary for m in members]


def _record_failure(members: list[_Member], ctx, e: BaseException) -> None:
    """Every failure and interruption in each run's events.log (a RunInterrupted is there
    already)."""
    from .errors import RunInterrupted

    if isinstance(e, RunInterrupted) or not ctx.is_main:
        return
    if isinstance(e, KeyboardInterrupt):
        msg = (
            "interrupted (a second Ctrl-C, or Ctrl-C before training started): "
            "no checkpoint written"
        )
    else:
        text = str(e).splitlines()[0] if str(e) else ""
        msg = (
            f"failed: {text}"
            if isinstance(e, (UserError, OSError))
            else f"failed: {type(e).__name__}: {text}"
        )
    for m in members:
        _record(m.out, msg)


def _record(out: Path, msg: str) -> None:
    """Append ``msg``, timestamped, to RUN_DIR/events.log if the folder exists (a full disk may
    refuse this too: the message has been said anyway)."""
    if not out.is_dir():
        return
    try:
        with open(out / "events.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")
    except OSError:
        pass


@dataclass
class _Member:
    """One run of a `srcr train` process: its config, directory and training state."""

    cfg: dict
    out: Path
    criterion: Any = None
    run: Any = None  # _Run, once built
    start: int = 0  # the iteration it resumes from
    log: Any = None  # JsonlLog (main process)
    plain: Any = None  # PlainProgress when there is no progress bar
    summary: dict | None = None
    group: int = 1  # runs trained in this process
    shared_backbone: bool = False

    @property
    def total(self) -> int:
        return int(self.cfg["train"]["iterations"])


def group_conflicts(a: dict, b: dict) -> list[str]:
    """The keys of GROUP_KEYS in which two run configs differ: runs that differ in none can train
    in one process (they see the same batches)."""
    from .config import config_diff_under

    return config_diff_under(a, b, GROUP_KEYS, ignore=RESUME_IGNORED_KEYS)


def _check_group(members: list[_Member], ctx) -> None:
    if len(members) < 2:
        return
    if ctx.distributed:
        raise UserError(
            "srcr train: several --run in one torchrun job are not supported; start one job per run"
        )
    from .cli_runs import check_distinct

    check_distinct([m.out for m in members], "run")
    lead = members[0]
    for m in members[1:]:
        diff = group_conflicts(lead.cfg, m.cfg)
        if diff:
            raise UserError(
                f"--run {m.out} cannot train in one process with --run {lead.out}: runs of one "
                f"process see the same batches, so they must agree on {', '.join(GROUP_KEYS)}; "
                f"they differ in {', '.join(diff)}"
            )
    for m in members:
        m.group = len(members)


def _prepare(m: _Member, ctx) -> dict | None:
    """Check one run's inputs; its summary if it is already complete, else None."""
    from .engine.checkpoint import FINAL_NAME, final_damage
    from .losses import build_criterion
    from .optim import check_schedule

    tcfg = m.cfg["train"]
    check_schedule(tcfg["schedule"], m.total)
    m.criterion = build_criterion(tcfg["loss"], m.cfg["model"]["num_classes"])
    _check_run_dir_config(m.cfg, m.out)
    final = m.out / "checkpoints" / FINAL_NAME
    if final.exists():
        damage = final_damage(final)
        if damage is None:
            _say(ctx, f"run in {m.out} is already complete ({m.total} iterations): {final}")
            return {"status": "complete", "iteration": m.total, "final": str(final)}
        _event(
            ctx,
            m.out,
            f"{final} is damaged ({damage}); training again from the newest good "
            f"checkpoint, which rewrites it",
        )
    if tcfg["batch_size"] % ctx.world_size:
        raise UserError(
            f"train.batch_size: the global batch {tcfg['batch_size']} is not divisible by the "
            f"{ctx.world_size} processes"
        )
    return None


def _set_determinism(ctx) -> None:
    import torch

    if ctx.device.type != "cuda":
        # the private setter: torch.use_deterministic_algorithms also imports torch._inductor to set
        # its flag (1.7 s of every process's start; nothing here compiles)
        torch._C._set_deterministic_algorithms(True, warn_only=True)
        # deterministic mode would also NaN-fill every new tensor: 2% of a CPU step, and no
        # kernel here reads memory before writing it (the determinism tests would see it)
        torch.utils.deterministic.fill_uninitialized_memory = False
    else:
        torch.backends.cudnn.benchmark = True


def _build_runs(members: list[_Member], ctx) -> None:
    """Each run's model and optimiser, resumed from its newest checkpoint; then one backbone for
    all, if every resumed backbone is frozen and equal (else each keeps its own)."""
    from .models.feature_cache import share_backbone

    for m in members:
        m.run = _build_run(m.cfg, ctx, m.criterion)
        m.start = _resume(m.run, m.cfg, m.out, ctx)
    if len(members) > 1 and share_backbone([m.run.model for m in members]) is not None:
        for m in members:
            m.shared_backbone = True
        _say(ctx, f"{len(members)} runs share one frozen backbone: its forward runs once per batch")


def _train_and_finish(members: list[_Member], ctx, dataset, progress: bool) -> None:
    from .engine.checkpoint import FINAL_NAME
    from .engine.distributed import barrier
    from .engine.signals import StopRequest
    from .errors import RunInterrupted

    for m in members:
        cfg = m.cfg
        _event(
            ctx,
            m.out,
            "training "
            + (f"{m.out}: " if m.group > 1 else "")
            + f"{cfg['model']['backbone']} + {cfg['model']['align']} + "
            f"{cfg['model']['context']} ({m.run.n_params / 1e6:.2f} M parameters) on {len(dataset)} "
            f"{cfg['data']['dataset']} images, {m.total} iterations x {cfg['train']['batch_size']} "
            f"images, {ctx.world_size} process(es) on {ctx.device.type}"
            + (f", one of {m.group} runs in this process" if m.group > 1 else ""),
        )
    with StopRequest() as stop:
        try:
            _train_loop(members, ctx, dataset, progress, stop)
        except RunInterrupted as e:
            for m in members:
                _event(ctx, m.out, str(e))
            raise
    for m in members:
        final = m.out / "checkpoints" / FINAL_NAME
        if ctx.is_main:
            _write_final(m, ctx)
            _event(
                ctx,
                m.out,
                f"finished {m.total} iterations in {m.run.train_time:.1f} s of training: {final}",
            )
        m.summary = {
            "status": "trained",
            "iteration": m.total,
            "resumed_from": m.start,
            "final": str(final),
        }
    barrier(ctx)


@dataclass
class _Run:
    """What the training loop updates: model, optimiser, criterion and the state saved with them."""

    model: Any
    train_model: Any
    optimizer: Any
    criterion: Any
    n_params: int
    log_window: dict = field(
        default_factory=lambda: {"count": 0, "sums": {}, "time": 0.0, "images": 0}
    )
    train_time: float = 0.0  # seconds of training steps over every process that worked on this run

    def state(self, cfg: dict, iteration: int) -> dict:
        import torch

        from . import __version__

        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": iteration,
            "config": cfg,
            "rng": {"torch": torch.get_rng_state()},
            "log_window": self.log_window,
            "train_time": self.train_time,
            "srcr_version": __version__,
        }


def _init_run_dir(cfg: dict, out: Path, ctx) -> None:
    from .config import dump_config
    from .utils.io import write_text

    if not ctx.is_main:
        return
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.yaml").exists():
        write_text(out / "config.yaml", dump_config(cfg))
    ckpt_dir = out / "checkpoints"
    # temporary files of a checkpoint being written when a previous process was killed
    for stale in ckpt_dir.glob(".*.tmp") if ckpt_dir.is_dir() else ():
        stale.unlink(missing_ok=True)


def init_model(cfg: dict, device=None):
    """The model as every run of this seed starts: seeded from ``seed`` alone, so for one seed every
    variant draws the same backbone weights (the backbone is built first) and the pairing of
    variants by seed holds (tests/test_pairing.py)."""
    from .models.segmentor import build_model
    from .utils.seed import seed_everything

    seed_everything(int(cfg["seed"]))
    model = build_model(cfg["model"])
    return model if device is None else model.to(device)


def _build_run(cfg: dict, ctx, criterion) -> _Run:
    import torch

    from .engine.distributed import convert_sync_batchnorm
    from .optim import build_optimizer

    model = init_model(cfg, ctx.device)
    if cfg["train"]["freeze_backbone"]:
        model.backbone.requires_grad_(False)
    if ctx.distributed:
        model = convert_sync_batchnorm(model, ctx.device)
    if cfg["train"]["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg["train"]["optimizer"])
    train_model = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    train_model.train()
    if cfg["train"]["freeze_backbone"]:
        model.backbone.eval()  # its BN statistics stay the pretrained ones
    return _Run(
        model=model,
        train_model=train_model,
        optimizer=optimizer,
        criterion=criterion.to(ctx.device),
        n_params=sum(p.numel() for p in model.parameters()),
    )


def _resume(run: _Run, cfg: dict, out: Path, ctx) -> int:
    """Load the newest good checkpoint of ``out`` into ``run``; the iteration to continue from."""
    from .config import config_diff

    found = _newest_good_checkpoint(out, ctx)
    if found is None:
        return 0
    path, ckpt = found
    if isinstance(ckpt.get("config"), dict):
        diff = config_diff(ckpt["config"], cfg, ignore=RESUME_IGNORED_KEYS)
        if diff:
            raise UserError(
                f"{path} was written with a different configuration (differing keys: "
                f"{', '.join(diff)}); use a new --out"
            )
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.log_window = ckpt.get("log_window", run.log_window)
    run.train_time = float(ckpt.get("train_time", 0.0))
    start = int(ckpt["iteration"])
    _event(
        ctx,
        out,
        f"resuming {out} from {path.name} (iteration {start} of {cfg['train']['iterations']})",
    )
    return start


def _newest_good_checkpoint(out: Path, ctx) -> tuple[Path, dict] | None:
    """(path, content) of the newest checkpoint that loads and matches its checksum; a damaged
    newer one is named in events.log. None without checkpoints; a UserError if all are damaged."""
    from .engine.checkpoint import list_checkpoints, load_checkpoint

    damaged: list[str] = []
    for _, path in reversed(list_checkpoints(out / "checkpoints")):
        try:
            ckpt = load_checkpoint(path, map_location=ctx.device)
        except UserError as e:
            damaged.append(str(e))
            _event(ctx, out, f"{e}; trying the previous checkpoint")
            continue
        if damaged:
            _event(ctx, out, f"falling back to {path}, the newest good checkpoint")
        return path, ckpt
    if damaged:
        raise UserError(
            f"no good checkpoint in {out / 'checkpoints'}:\n  "
            + "\n  ".join(damaged)
            + "\nremove the damaged files to train this run from the start"
        )
    return None


def _make_loader(dataset, cfg: dict, ctx, start: int):
    import torch
    from torch.utils.data import DataLoader

    from .engine.sampler import InfiniteBatchSampler, InfiniteSeededSampler
    from .utils.seed import derive_seed

    seed = int(cfg["seed"])
    sampler = InfiniteSeededSampler(
        len(dataset), seed, cfg["train"]["batch_size"], ctx.rank, ctx.world_size, start
    )
    loader_gen = torch.Generator()
    loader_gen.manual_seed(derive_seed(seed, STREAM_LOADER, start, ctx.rank))
    return DataLoader(
        dataset,
        batch_sampler=InfiniteBatchSampler(sampler),
        num_workers=int(cfg["data"]["num_workers"]),
        worker_init_fn=_seed_worker,
        generator=loader_gen,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,
    )


def _no_clock(phase: str) -> None:
    pass


def _train_step(run: _Run, cfg: dict, ctx, batch, it: int, log, ckpt_dir: Path, clock=None) -> dict:
    """One optimisation step at iteration ``it`` (0-based); the loss terms as floats. ``clock``,
    if given, is called with the name of each phase as it ends: data (to the device), forward (with
    the loss), backward, optimiser (srcr bench gpu times them)."""
    import torch

    from .engine.amp import autocast
    from .engine.distributed import any_flag
    from .losses import NonFiniteLoss
    from .optim import apply_lr, lr_factor
    from .utils.seed import derive_seed

    tcfg, seed, device = cfg["train"], int(cfg["seed"]), ctx.device
    images = batch["image"].to(device, non_blocking=True)
    labels = batch["label"].to(device, non_blocking=True).long()
    if tcfg["channels_last"]:
        images = images.contiguous(memory_format=torch.channels_last)
    clock = clock or _no_clock
    clock("data")
    torch.manual_seed(derive_seed(seed, STREAM_TORCH, it, ctx.rank))
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, STREAM_CONTRAST, it, ctx.rank))
    apply_lr(run.optimizer, lr_factor(it, tcfg["schedule"], int(tcfg["iterations"])))
    bad = None
    with autocast(tcfg["amp"], device):
        outputs = run.train_model(images)
    outputs = {k: v.float() for k, v in outputs.items()}
    try:
        loss, terms = run.criterion(outputs, labels, it, gen)
    except NonFiniteLoss as e:
        bad = (e.term, e.value)
    if any_flag(ctx, bad is not None):
        bad = bad or ("(another rank)", float("nan"))
        raise _diverged(it + 1, bad[0], bad[1], ckpt_dir, log)
    clock("forward")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clock("backward")
    if tcfg["grad_clip"] is not None:
        params = [p for p in run.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, float(tcfg["grad_clip"]))
        if any_flag(ctx, not bool(torch.isfinite(norm))):
            raise _diverged(it + 1, "gradient norm", float(norm), ckpt_dir, log)
    run.optimizer.step()
    clock("optimiser")
    return {"loss": float(loss.detach()), **terms}


def _train_loop(members: list[_Member], ctx, dataset, progress: bool, stop) -> None:
    """Iterations from the earliest resume point to the last run's end; at each, every run that is
    past its own resume point and not finished takes one step on the shared batch."""
    from .engine.distributed import any_flag
    from .engine.progress import progress_bar

    start, end = min(m.start for m in members), max(m.total for m in members)
    label = members[0].out.name if len(members) == 1 else f"{len(members)} runs"
    bar = (
        progress_bar(end, f"train {label}", initial=start, enabled=progress)
        if ctx.is_main
        else None
    )
    _open_logs(members, ctx, plain=bar is None)
    data_iter = iter(_make_loader(dataset, members[0].cfg, ctx, start))
    it = start
    try:
        while it < end:
            t0 = time.perf_counter()
            batch = next(data_iter)
            active = [m for m in members if m.start <= it < m.total]
            share = (time.perf_counter() - t0) / len(
                active
            )  # loading, split over the runs it serves
            for m in active:
                _member_step(m, ctx, batch, it, share, bar if len(members) == 1 else None)
            it += 1
            if bar is not None:
                bar.update(1)
            stopping = it < end and (
                any_flag(ctx, stop.requested) if ctx.distributed else stop.requested
            )
            for m in active:
                if stopping or it % m.cfg["train"]["checkpoint_interval"] == 0 or it == m.total:
                    _save(m, ctx, it)
            if stopping:
                raise _interrupted(stop.signal_name, it, end, [m.out for m in members])
    finally:
        if bar is not None:
            bar.close()
        for m in members:
            if m.log is not None:
                m.log.close()
        del data_iter


def _open_logs(members: list[_Member], ctx, plain: bool) -> None:
    from .engine.progress import PlainProgress
    from .engine.train_log import JsonlLog

    for m in members:
        if ctx.is_main:
            m.log = JsonlLog(m.out / "log.jsonl", resume_iteration=m.start)
            m.plain = PlainProgress(m.total, f"train {m.out}", initial=m.start) if plain else None


def _member_step(m: _Member, ctx, batch, it: int, load_time: float, bar) -> None:
    """One step of one run, with its timing, log window, log lines and progress postfix."""
    t0 = time.perf_counter()
    terms = _train_step(m.run, m.cfg, ctx, batch, it, m.log, m.out / "checkpoints")
    dt = time.perf_counter() - t0 + load_time
    m.run.train_time += dt
    tcfg = m.cfg["train"]
    _accumulate(m.run.log_window, terms, dt, int(tcfg["batch_size"]))
    if bar is not None:
        bar.set_postfix(
            loss=f"{terms['loss']:.4f}", lr=f"{m.run.optimizer.param_groups[0]['lr']:.2e}"
        )
    done = it + 1
    if done % tcfg["log_interval"] == 0 or done == m.total:
        record = _flush_log_window(m.run, ctx, done)
        if m.log is not None:
            m.log.write(record)
        if m.plain is not None:
            m.plain.line(
                done,
                {k: v for k, v in record.items() if k not in ("iteration", "lr", "images_per_s")},
                lr=record["lr"],
                rate=record["images_per_s"],
            )


def _save(m: _Member, ctx, iteration: int) -> None:
    from .engine.checkpoint import save_checkpoint
    from .engine.distributed import barrier

    if ctx.is_main:
        save_checkpoint(
            m.out / "checkpoints",
            iteration,
            m.run.state(m.cfg, iteration),
            int(m.cfg["train"]["keep_checkpoints"]),
        )
    barrier(ctx)


def _accumulate(window: dict, terms: dict, dt: float, images: int) -> None:
    window["count"] += 1
    window["time"] += dt
    window["images"] += images
    for k, v in terms.items():
        window["sums"][k] = window["sums"].get(k, 0.0) + v


def _flush_log_window(run: _Run, ctx, iteration: int) -> dict:
    """The log record of the iterations since the last one (means; DDP ranks averaged)."""
    w = run.log_window
    n = max(w["count"], 1)
    record = {"iteration": iteration, "lr": run.optimizer.param_groups[0]["lr"]}
    record.update({k: v / n for k, v in _mean_over_ranks(ctx, w["sums"]).items()})
    record["images_per_s"] = w["images"] / max(w["time"], 1e-9)
    run.log_window = {"count": 0, "sums": {}, "time": 0.0, "images": 0}
    return record


def _interrupted(signal_name: str | None, it: int, total: int, outs: list[Path]):
    from .errors import RunInterrupted

    where = (
        f"checkpoint written to {outs[0] / 'checkpoints'}"
        if len(outs) == 1
        else f"each run's checkpoint written to its checkpoints/ ({', '.join(map(str, outs))})"
    )
    return RunInterrupted(
        f"interrupted by {signal_name or 'a stop request'} at iteration {it} of {total}; "
        f"{where}; run the same command again to resume"
    )


def _write_final(m: _Member, ctx) -> None:
    """summary.json (time, size, machine), then final.pth: the checkpoint marks the run complete, so
    whoever sees it also finds the summary."""
    from . import __version__
    from .engine.checkpoint import save_final
    from .utils.io import write_json
    from .utils.machine import machine_info

    run, cfg = m.run, m.cfg
    write_json(
        m.out / "summary.json",
        {
            "iterations": m.total,
            "train_time_s": run.train_time,
            "params": run.n_params,
            "world_size": ctx.world_size,
            "runs_in_process": m.group,
            "shared_backbone": m.shared_backbone,
            "srcr_version": __version__,
            "machine": machine_info(ctx.device),
        },
    )
    save_final(
        m.out / "checkpoints",
        {
            "model": run.model.state_dict(),
            "iteration": m.total,
            "config": cfg,
            "srcr_version": __version__,
        },
    )


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
    where = (
        f"the last good checkpoint, {ckpts[-1][1]} (iteration {ckpts[-1][0]}), is kept"
        if ckpts
        else "no checkpoint had been written yet"
    )
    if log is not None:
        log.write(
            {
                "iteration": iteration,
                "error": "non-finite loss",
                "term": term,
                "value": value if math.isfinite(value) else str(value),
            }
        )
    return TrainingDiverged(
        f"non-finite loss at iteration {iteration}: term '{term}' = {value}; training stopped and "
        f"{where}. Lower train.optimizer.lr or set train.grad_clip, then start a new run.",
        iteration,
        term,
    )
