"""The `srcr` command line: one subcommand per step, so every workflow rule also runs by hand.

Each subcommand lives in its own module, imported only when it is used (so `srcr --help` is fast),
and exposes ``configure(parser)`` to declare its arguments and ``run(args) -> int`` to do the work.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import RunInterrupted, UserError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("srcr.data.synthetic_gen", "generate the synthetic dataset (the embedded default)"),
    "check-data": ("srcr.data.check", "check a dataset split on disk before training"),
    "train": ("srcr.train", "train a model from a config (resumable)"),
    "evaluate": ("srcr.evaluate", "evaluate a checkpoint and write metrics"),
    "predict": ("srcr.predict", "label your own images with a trained checkpoint (PNGs per image)"),
    "flops": ("srcr.flops", "count GFLOPs and parameters (fvcore, audited)"),
    "aggregate": (
        "srcr.suite.aggregate",
        "one row per (variant, seed) of a suite's results: runs.csv",
    ),
    "cost": (
        "srcr.suite.cost",
        "runs, iterations and training FLOPs of a suite config, before it runs",
    ),
    "report": (
        "srcr.report.cli",
        "tables with paired intervals, figures and error reports from results",
    ),
    "plan": ("srcr.report.seed_plan", "seeds each table needs for an effect and power (a pilot)"),
}

BENCHES: dict[str, tuple[str, str]] = {
    "modules": ("srcr.bench.modules", "latency and GFLOPs of each alignment and context module"),
    "metrics": ("srcr.bench.metrics", "time per image of the metric set vs a GSCNN-style scorer"),
    "train": ("srcr.bench.train", "training images/s and model FLOP utilisation"),
    "predict": (
        "srcr.bench.predict",
        "srcr predict images/s beside srcr evaluate's time per image",
    ),
    "model": ("srcr.bench.model", "latency, memory and achieved GFLOP/s of a config's whole model"),
    "gpu": (
        "srcr.bench.gpu",
        "GPU acceptance check: paper-scale training, DDP, evaluation, throughput",
    ),
}


class _LazyModuleCommand:
    """Defers importing a subcommand's module until its arguments are needed."""

    def __init__(self, module: str):
        self.module = module

    def load(self):
        return importlib.import_module(self.module)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    from . import __version__

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="srcr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"srcr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # Only the chosen subcommand's module is imported; the rest only contribute their help line.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            mod = _LazyModuleCommand(module).load()
            mod.configure(p)
            p.set_defaults(_run=mod.run)

    bench = sub.add_parser(
        "bench",
        help="benchmarks that print side-by-side figures",
        description="benchmarks that print side-by-side figures",
    )
    bsub = bench.add_subparsers(dest="bench", metavar="BENCH")
    bsub.required = True
    if chosen == "bench":
        rest = argv[argv.index("bench") + 1 :]
        bchosen = next((a for a in rest if not a.startswith("-")), None)
    else:
        bchosen = None
    for name, (module, help_) in BENCHES.items():
        p = bsub.add_parser(name, help=help_, description=help_)
        if name == bchosen:
            mod = _LazyModuleCommand(module).load()
            mod.configure(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RunInterrupted as e:  # stopped on request after saving its state: run again to resume
        print(f"srcr {args.command}: {e}", file=sys.stderr)
        return e.exit_status
    except UserError as e:  # bad input: a clear message, no traceback
        print(f"srcr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write outside srcr.utils.io (a log, a folder): still one line
        from .utils.io import write_error

        err = write_error(e.filename or "?", e) if e.filename else None
        if err is None:
            raise
        print(f"srcr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
