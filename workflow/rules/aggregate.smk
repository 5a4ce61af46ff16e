# The table of every run (runs.csv). Cheap: it runs on the submitting host, never as a cluster job.


localrules:
    aggregate,


rule aggregate:
    input:
        metrics=run_outputs(f"{RESULTS}/{{variant}}/seed{{seed}}/eval/metrics.json"),
        flops=expand(f"{RESULTS}/flops/{{variant}}.json", variant=PLAN.variants),
        latency=expand(
            f"{RESULTS}/latency/{{variant}}.json",
            variant=PLAN.variants if PLAN.latency else [],
        ),
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
        latency="--latency" if PLAN.latency else "",
    shell:
        "srcr aggregate --results {params.results} --variants {params.variants} --seeds {params.seeds} "
        "{params.latency} --out {output} > {log} 2>&1"
