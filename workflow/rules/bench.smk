rule bench:
    input:
        model=lambda wildcards: model_inputs(grid().benches.at[wildcards.bench, "model_arg"]),
    output:
        BENCH / "{device}" / "{bench}.json",
    log:
        LOGS / "bench" / "{device}" / "{bench}.log",
    benchmark:
        TIMINGS / "bench" / "{device}" / "{bench}.tsv"
    threads: lambda wildcards: jobs.bench_threads(config, workflow.cores)
    resources:
        gpu=lambda wildcards: int(wildcards.device == "cuda"),
    params:
        args=lambda wildcards: jobs.bench_arguments(config, grid().benches.loc[wildcards.bench]),
    conda:
        ENV
    shell:
        "stnbench bench {params.args} --device {wildcards.device} --threads {threads}"
        " --out {output} > {log} 2>&1"
