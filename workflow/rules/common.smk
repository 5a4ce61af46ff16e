# Helpers shared by the rules. Everything the suite config asks for is resolved (and every
# variant's run config validated) by srcr.suite.plan before the first job starts.

import os
import shlex
import sys

from srcr.suite.plan import make_plan

PLAN = make_plan(config)
RESULTS = f"results/{PLAN.name}"
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


def run_path(variant, seed):
    return f"{RESULTS}/{variant}/seed{seed}"


def run_dir(w):
    return run_path(w.variant, w.seed)


def set_args(variant, seed=None):
    return " ".join(f"--set {shlex.quote(o)}" for o in PLAN.overrides(variant, seed))


def seed_group_args(seed, evaluate=False):
    """The --set and --run arguments of one process that trains (or evaluates) every variant of
    ``seed``: --run RUN_DIR (--run CHECKPOINT EVAL_DIR), each followed by that run's own --sets.
    """
    shared, runs = PLAN.seed_group(int(seed))
    args = [f"--set {shlex.quote(o)}" for o in shared]
    for variant, own in runs:
        run = run_path(variant, seed)
        paths = [f"{run}/checkpoints/final.pth", f"{run}/eval"] if evaluate else [run]
        args.append("--run " + " ".join(shlex.quote(p) for p in paths))
        args += [f"--set {shlex.quote(o)}" for o in own]
    return " ".join(args)


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


# report() objects made in a function resolve relative captions against the working directory
CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")
# offset figures per offset variant: as many as evaluation stored, at most two
REPORT_OFFSET_IMAGES = max(1, min(2, int(PLAN.base["eval"]["offset_images"])))


def _caption(rel):
    """The caption file of one report output (workflow/report/KIND.rst) and its category."""
    parts = rel.split("/")
    stem = parts[-1].rsplit(".", 1)[0]
    if parts[1] == "tables":
        if stem in PLAN.tables:
            return "table", "Tables"
        # the numbers behind a figure: NAME_data.rst where written, else the generic data.rst
        kind = f"{stem}_data"
        return (kind if os.path.exists(f"{CAPTIONS}/{kind}.rst") else "data"), "Data"
    if len(parts) > 3 and parts[2] == "offsets":
        return "offsets", "Offsets"
    if stem.startswith("class_changes_"):
        return "class_changes", "Errors"
    if stem.startswith("curves_"):
        return "curves", "Training"
    if stem.startswith("confusion_"):
        return "confusion", "Figures"
    if stem in ("report", "errors"):
        return stem, "Reports"
    return stem, "Figures"


def report_outputs():
    """Every file srcr report writes for this suite. The HTML report shows PNG and HTML files
    inline and offers any other file as a download, so the figures (PNG) and the HTML renderings of
    the reports and tables (not their .md/.csv sources) are flagged, each with its caption.
    """
    from srcr.report.outputs import expected_outputs

    rels = expected_outputs(
        PLAN.grid.path, [PLAN.name], list(PLAN.tables), REPORT_OFFSET_IMAGES
    )
    outs = []
    for rel in rels:
        path = f"reports/{rel}"
        if rel.endswith((".png", ".html")):
            kind, category = _caption(rel)
            path = report(path, caption=f"{CAPTIONS}/{kind}.rst", category=category)
        outs.append(path)
    return outs


# srcr synth, for the evaluated set and the pretraining split
SYNTH_SHELL = (
    "srcr synth --out {output:q} --n-train {params.n_train} --n-val {params.n_val} "
    "--size {params.size} --seed {params.seed} --workers {threads} --no-progress > {log:q} 2>&1"
)


def synth_params(spec):
    return dict(
        n_train=spec["n_train"],
        n_val=spec["n_val"],
        size="x".join(str(s) for s in spec["size"]),
        seed=spec["seed"],
    )
