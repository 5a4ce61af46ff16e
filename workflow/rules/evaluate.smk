# Metrics of each run on the validation split (metrics.json is written last, as the marker).


rule evaluate:
    input:
        config=PLAN.base_config,
        checkpoint=FINAL,
        data=data_inputs,
    output:
        metrics=f"{RESULTS}/{{variant}}/seed{{seed}}/eval/metrics.json",
        per_image=f"{RESULTS}/{{variant}}/seed{{seed}}/eval/per_image.npz",
        per_class=f"{RESULTS}/{{variant}}/seed{{seed}}/eval/per_class.csv",
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
        "srcr evaluate --config {input.config} --checkpoint {input.checkpoint} --out {params.out} "
        "{params.sets} --threads {threads} --device {params.device} > {log} 2>&1"
