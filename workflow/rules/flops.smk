# GFLOPs and parameters of each variant's inference model at the suite's reporting size; with
# `latency:` in the suite config, its measured forward latency too (srcr bench model).


rule flops:
    input:
        config=PLAN.base_config,
    output:
        f"{RESULTS}/flops/{{variant}}.json",
    log:
        f"{LOGS}/flops/{{variant}}.log",
    benchmark:
        f"{BENCHMARKS}/flops/{{variant}}.tsv"
    conda:
        "../envs/srcr.yaml"
    threads: res("flops", "threads")
    resources:
        mem_mb=res("flops", "mem_mb"),
        runtime=res("flops", "runtime"),
    params:
        sets=lambda w: set_args(w.variant),
        size=(
            f"--size {PLAN.flops_size[0]}x{PLAN.flops_size[1]}"
            if PLAN.flops_size
            else ""
        ),
    shell:
        "srcr flops --config {input.config:q} {params.sets} {params.size} --json {output:q} "
        "--threads {threads} > {log:q} 2>&1"


if PLAN.latency:

    rule latency:
        input:
            config=PLAN.base_config,
        output:
            f"{RESULTS}/latency/{{variant}}.json",
        log:
            f"{LOGS}/latency/{{variant}}.log",
        benchmark:
            f"{BENCHMARKS}/latency/{{variant}}.tsv"
        conda:
            "../envs/srcr.yaml"
        threads: res("evaluate", "threads")
        resources:
            mem_mb=res("evaluate", "mem_mb"),
            runtime=res("evaluate", "runtime"),
            gpu=min(res("evaluate", "gpu"), 1),
        params:
            sets=lambda w: set_args(w.variant),
            size=(
                f"--size {PLAN.flops_size[0]}x{PLAN.flops_size[1]}"
                if PLAN.flops_size
                else ""
            ),
            options=" ".join(f"--{k} {v}" for k, v in (PLAN.latency or {}).items()),
            device=device("evaluate"),
        shell:
            "srcr bench model --config {input.config:q} {params.sets} {params.size} "
            "{params.options} --device {params.device} --json {output:q} --threads {threads} "
            "> {log:q} 2>&1"
