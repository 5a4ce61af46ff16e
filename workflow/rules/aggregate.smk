# The table of every run (runs.csv, and runs.html: the same cells as a page that the HTML report
# shows inline). Cheap: it runs on the submitting host, never as a cluster job.


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
        csv=f"{RESULTS}/runs.csv",
        html=report(
            f"{RESULTS}/runs.html", caption="../report/runs.rst", category="Runs"
        ),
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../envs/srcr.yaml"
    params:
        results=lambda w, output: os.path.dirname(output.csv),
        variants=",".join(PLAN.variants),
        seeds=",".join(str(s) for s in PLAN.seeds),
        latency="--latency" if PLAN.latency else "",
    shell:
        "srcr aggregate --results {params.results:q} --variants {params.variants} --seeds {params.seeds} "
        "{params.latency} --out {output.csv:q} --html {output.html:q} > {log:q} 2>&1"
