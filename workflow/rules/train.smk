# One training run per (variant, seed), fine-tuned from the suite's pretraining run if it has one. Only the final checkpoint is declared: Snakemake deletes
# the declared outputs of an interrupted job, and the run folder's iteration checkpoints are what
# `srcr train` resumes from. Snakemake rewrites the log per attempt; the run's own history of
# starts, resumes and interruptions is RUN/events.log.


rule train:
    input:
        config=PLAN.base_config,
        data=data_inputs,
        pretrained=[PLAN.pretrained] if PLAN.pretrained else [],
    output:
        f"{RESULTS}/{{variant}}/seed{{seed}}/checkpoints/final.pth",
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
        "{params.launcher} train --config {input.config} --out {params.run} {params.sets} "
        "--threads {params.threads} --device {params.device} > {log} 2>&1"


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
            "{params.launcher} train --config {input.config} --out {params.run} {params.sets} "
            "--threads {params.threads} --device {params.device} > {log} 2>&1"
