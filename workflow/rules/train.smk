# One training run per (variant, seed), fine-tuned from the suite's pretraining run if it has one;
# with group_by_seed, one job per seed trains every variant in one process (`srcr train --run ...`:
# one data stream, the frozen backbone's forward once per batch, each run exactly as if alone).
# Only the final checkpoints are declared: Snakemake deletes the declared outputs of an
# interrupted job, and the run folders' iteration checkpoints are what `srcr train` resumes from.
# Snakemake rewrites the log per attempt; each run's own history of starts, resumes and
# interruptions is RUN/events.log.

FINAL = f"{RESULTS}/{{variant}}/seed{{seed}}/checkpoints/final.pth"

if PLAN.group_by_seed:

    rule train_seed:
        input:
            config=PLAN.base_config,
            data=data_inputs,
            pretrained=[PLAN.pretrained] if PLAN.pretrained else [],
        output:
            expand(FINAL, variant=PLAN.variants, allow_missing=True),
        log:
            f"{LOGS}/train/seed{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/train/seed{{seed}}.tsv"
        conda:
            "../envs/srcr.yaml"
        threads: res("train", "threads")
        resources:
            mem_mb=res("train", "mem_mb"),
            runtime=res("train", "runtime"),
            gpu=res("train", "gpu"),
        params:
            runs=lambda w: seed_group_args(w.seed),
            device=device("train"),
            threads=threads_per_process("train"),
        shell:
            "srcr train --config {input.config:q} {params.runs} "
            "--threads {params.threads} --device {params.device} > {log:q} 2>&1"

else:

    rule train:
        input:
            config=PLAN.base_config,
            data=data_inputs,
            pretrained=[PLAN.pretrained] if PLAN.pretrained else [],
        output:
            FINAL,
        log:
            f"{LOGS}/train/{{variant}}/seed{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/train/{{variant}}/seed{{seed}}.tsv"
        conda:
            "../envs/srcr.yaml"
        threads: res("train", "threads")
        resources:
            mem_mb=res("train", "mem_mb"),
            runtime=res("train", "runtime"),
            gpu=res("train", "gpu"),
        params:
            run=run_dir,
            sets=lambda w: set_args(w.variant, w.seed),
            launcher=launcher("train"),
            device=device("train"),
            threads=threads_per_process("train"),
        shell:
            "{params.launcher} train --config {input.config:q} --out {params.run:q} {params.sets} "
            "--threads {params.threads} --device {params.device} > {log:q} 2>&1"


if PLAN.pretrain:

    rule pretrain:
        input:
            config=PLAN.base_config,
            data=[PLAN.pretrain.data_root] if PLAN.pretrain.synthetic else [],
        output:
            PLAN.pretrained,
        log:
            f"{LOGS}/pretrain.log",
        benchmark:
            f"{BENCHMARKS}/pretrain.tsv"
        priority: 10  # on every training job's path: start it before the flops counts
        conda:
            "../envs/srcr.yaml"
        threads: res("pretrain", "threads")
        resources:
            mem_mb=res("pretrain", "mem_mb"),
            runtime=res("pretrain", "runtime"),
            gpu=res("pretrain", "gpu"),
        params:
            run=lambda w, output: os.path.dirname(os.path.dirname(output[0])),
            sets=" ".join(f"--set {shlex.quote(o)}" for o in PLAN.pretrain.overrides),
            launcher=launcher("pretrain"),
            device=device("pretrain"),
            threads=threads_per_process("pretrain"),
        shell:
            "{params.launcher} train --config {input.config:q} --out {params.run:q} {params.sets} "
            "--threads {params.threads} --device {params.device} > {log:q} 2>&1"
