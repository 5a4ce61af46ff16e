# The embedded synthetic dataset, generated once where the base config's data.root points
# (byte-identical for a seed), and the pretraining run's own split (another seed: it never holds
# the validation images). Real datasets are never generated: point data_root at them.


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
            **synth_params(PLAN.synthetic),
        shell:
            SYNTH_SHELL


if PLAN.pretrain and PLAN.pretrain.synthetic:

    rule synth_pretrain:
        output:
            directory(PLAN.pretrain.data_root),
        log:
            f"{LOGS}/synth_pretrain.log",
        benchmark:
            f"{BENCHMARKS}/synth_pretrain.tsv"
        priority: 10
        conda:
            "../envs/srcr.yaml"
        threads: 1
        params:
            **synth_params(PLAN.pretrain.synthetic),
        shell:
            SYNTH_SHELL
