# The table of every run, then one plain Markdown table per ablation group. Cheap: they run on
# the submitting host, never as cluster jobs.


localrules:
    aggregate,
    tables,


rule aggregate:
    input:
        metrics=run_outputs(f"{RESULTS}/{{variant}}/seed{{seed}}/eval/metrics.json"),
        flops=expand(f"{RESULTS}/flops/{{variant}}.json", variant=PLAN.variants),
    output:
        report(f"{RESULTS}/runs.csv", caption="../report/runs.rst", category="Runs"),
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../envs/srcr.yaml"
    params:
        results=lambda w, output: os.path.dirname(output[0]),
        variants=",".join(PLAN.variants),
        seeds=",".join(str(s) for s in PLAN.seeds),
    shell:
        "srcr aggregate --results {params.results} --variants {params.variants} --seeds {params.seeds} "
        "--out {output} > {log} 2>&1"


rule tables:
    input:
        runs=rules.aggregate.output[0],
        grid=PLAN.grid.path,
    output:
        report(table_outputs(), caption="../report/tables.rst", category="Tables"),
    log:
        f"{LOGS}/tables.log",
    conda:
        "../envs/srcr.yaml"
    params:
        reports=lambda w, output: os.path.dirname(output[0]),
        tables=",".join(PLAN.tables),
    shell:
        "srcr tables --runs {input.runs} --grid {input.grid} --tables {params.tables} "
        "--out {params.reports} > {log} 2>&1"
