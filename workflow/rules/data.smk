# The embedded synthetic dataset, generated once where the base config's data.root points
# (byte-identical for a seed). Real datasets are never generated: point data_root at them.


if PLAN.synthetic:

    rule synth:
        output:
            directory(PLAN.data_root),
        log:
            f"{LOGS}/synth.log",
        benchmark:
            f"{BENCHMARKS}/synth.tsv"
        conda:
            "../envs/srcr.yaml"
        threads: 1
        params:
            n_train=PLAN.synthetic["n_train"],
            n_val=PLAN.synthetic["n_val"],
            size="x".join(str(s) for s in PLAN.synthetic["size"]),
            seed=PLAN.synthetic["seed"],
        shell:
            "srcr synth --out {output} --n-train {params.n_train} --n-val {params.n_val} "
            "--size {params.size} --seed {params.seed} --workers {threads} --no-progress > {log} 2>&1"
