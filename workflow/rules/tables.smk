# The table of every run, then one plain Markdown table per ablation group. Cheap: they run on
# the submitting host, never as cluster jobs.


localrules:
    aggregate,
    tables,


rule aggregate:
    input:
        metrics=run_outputs(RESULTS + "/{variant}/seed{seed}/eval/metrics.json"),
        flops=expand(f"{RESULTS}/flops/{{variant}}.json", variant=PLAN.variants),
    output:
        report(f"{RESULTS}/runs.csv", caption="../report/runs.rst", category="Runs"),
    params:
        variants=",".join(PLAN.variants),
        seeds=",".join(str(s) for s in PLAN.seeds),
    log:
        f"{LOGS}/aggregate.log",
    shell:
        "{SRCR} aggregate --results {RESULTS} --variants {params.variants} --seeds {params.seeds} "
        "--out {output} > {log} 2>&1"


rule tables:
    input:
        runs=rules.aggregate.output[0],
        grid=PLAN.grid.path,
    output:
        report(table_outputs(), caption="../report/tables.rst", category="Tables"),
    params:
        tables=",".join(PLAN.tables),
    log:
        f"{LOGS}/tables.log",
    shell:
        "{SRCR} tables --runs {input.runs} --grid {input.grid} --tables {params.tables} "
        "--out {REPORTS} > {log} 2>&1"
