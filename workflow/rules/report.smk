# The reports: one table per ablation group with paired intervals, figures, offset visualisations
# and the boundary-versus-interior error report (srcr report, from result files only). Cheap
# enough for the submitting host. Every figure and table is flagged for `snakemake --report`.


localrules:
    report,


rule report:
    input:
        metrics=run_outputs(f"{RESULTS}/{{variant}}/seed{{seed}}/eval/metrics.json"),
        per_image=run_outputs(f"{RESULTS}/{{variant}}/seed{{seed}}/eval/per_image.npz"),
        flops=expand(f"{RESULTS}/flops/{{variant}}.json", variant=PLAN.variants),
        grid=PLAN.grid.path,
    output:
        report_outputs(),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCHMARKS}/report.tsv"
    conda:
        "../envs/srcr.yaml"
    threads: 2
    params:
        results=lambda w, input: os.path.dirname(os.path.dirname(input.flops[0])),
        out=lambda w, output: os.path.dirname(os.path.dirname(output[0])),
        tables=",".join(PLAN.tables),
        offset_images=REPORT_OFFSET_IMAGES,
    shell:
        "srcr report --results {params.results:q} --grid {input.grid:q} --tables {params.tables} "
        "--out {params.out:q} --offset-images {params.offset_images} --threads {threads} --no-progress "
        "> {log:q} 2>&1"
