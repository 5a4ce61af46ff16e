# Metrics of each run on the validation split (metrics.json is written last, as the marker); with
# group_by_seed, one job per seed evaluates every variant in one pass over the images
# (`srcr evaluate --run ...`: the frozen backbone's forward once per image).

EVAL = f"{RESULTS}/{{variant}}/seed{{seed}}/eval"

if PLAN.group_by_seed:

    rule evaluate_seed:
        input:
            config=PLAN.base_config,
            checkpoints=expand(FINAL, variant=PLAN.variants, allow_missing=True),
            data=data_inputs,
        output:
            metrics=expand(
                f"{EVAL}/metrics.json", variant=PLAN.variants, allow_missing=True
            ),
            per_image=expand(
                f"{EVAL}/per_image.npz", variant=PLAN.variants, allow_missing=True
            ),
            per_class=expand(
                f"{EVAL}/per_class.csv", variant=PLAN.variants, allow_missing=True
            ),
        log:
            f"{LOGS}/evaluate/seed{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/evaluate/seed{{seed}}.tsv"
        conda:
            "../envs/srcr.yaml"
        threads: res("evaluate", "threads")
        resources:
            mem_mb=res("evaluate", "mem_mb"),
            runtime=res("evaluate", "runtime"),
            gpu=res("evaluate", "gpu"),
        params:
            runs=lambda w: seed_group_args(w.seed, evaluate=True),
            device=device("evaluate"),
        shell:
            "srcr evaluate --config {input.config:q} {params.runs} "
            "--threads {threads} --device {params.device} > {log:q} 2>&1"

else:

    rule evaluate:
        input:
            config=PLAN.base_config,
            checkpoint=FINAL,
            data=data_inputs,
        output:
            metrics=f"{EVAL}/metrics.json",
            per_image=f"{EVAL}/per_image.npz",
            per_class=f"{EVAL}/per_class.csv",
        log:
            f"{LOGS}/evaluate/{{variant}}/seed{{seed}}.log",
        benchmark:
            f"{BENCHMARKS}/evaluate/{{variant}}/seed{{seed}}.tsv"
        conda:
            "../envs/srcr.yaml"
        threads: res("evaluate", "threads")
        resources:
            mem_mb=res("evaluate", "mem_mb"),
            runtime=res("evaluate", "runtime"),
            gpu=res("evaluate", "gpu"),
        params:
            out=lambda w: f"{run_dir(w)}/eval",
            sets=lambda w: set_args(w.variant, w.seed),
            device=device("evaluate"),
        shell:
            "srcr evaluate --config {input.config:q} --checkpoint {input.checkpoint:q} --out {params.out:q} "
            "{params.sets} --threads {threads} --device {params.device} > {log:q} 2>&1"
