# Helpers shared by the rules. Everything the suite config asks for is resolved (and every
# variant's run config validated) by srcr.suite.plan before the first job starts.

import os
import shlex
import sys

from srcr.suite.plan import make_plan

PLAN = make_plan(config)
RESULTS = f"results/{PLAN.name}"
REPORTS = f"reports/{PLAN.name}"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"


envvars:
    "PATH",


# Jobs run `srcr` (and `torchrun`) from the environment that runs Snakemake, also when it was
# started as .venv/bin/snakemake without activating the environment; cluster jobs inherit PATH.
os.environ["PATH"] = (
    os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
)


wildcard_constraints:
    variant="|".join(PLAN.variants),
    seed=r"\d+",


def run_dir(w):
    return f"{RESULTS}/{w.variant}/seed{w.seed}"


def set_args(variant, seed=None):
    return " ".join(f"--set {shlex.quote(o)}" for o in PLAN.overrides(variant, seed))


def data_inputs(wildcards):
    """The generated dataset, for the synthetic set; real data is checked by srcr train itself."""
    return [PLAN.data_root] if PLAN.synthetic else []


def res(step, key):
    return PLAN.resources[step][key]


def device(step):
    return "cuda" if res(step, "gpu") > 0 else "cpu"


def launcher(step):
    """`srcr` for one process; torchrun with one process per GPU for more than one GPU."""
    gpus = res(step, "gpu")
    if gpus <= 1:
        return "srcr"
    return f"torchrun --standalone --nproc_per_node {gpus} -m srcr.cli"


def threads_per_process(step):
    """Torch threads of each process: the job's threads (capped by --cores) over its processes."""
    return lambda wildcards, threads: max(1, threads // max(1, res(step, "gpu")))


def run_outputs(pattern):
    return [pattern.format(variant=v, seed=s) for v, s in PLAN.runs()]


def table_outputs():
    return [f"{REPORTS}/{t}.md" for t in PLAN.tables]
