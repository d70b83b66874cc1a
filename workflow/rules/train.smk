rule run_spec:
    output:
        RUNS / "{cell}" / "spec.yaml",
    params:
        spec=lambda wildcards: grid().spec(wildcards.cell),
    log:
        LOGS / "spec" / "{cell}.log",
    localrule: True
    run:
        pipeline.write_run_spec(output[0], params.spec)


rule model_definition:
    output:
        RESULTS / "models" / "{variant}.yaml",
    params:
        definition=lambda wildcards: grid().variants[wildcards.variant],
    log:
        LOGS / "models" / "{variant}.log",
    localrule: True
    run:
        pipeline.write_definition(output[0], params.definition)


rule train:
    input:
        unpack(train_inputs),
    # predictions.npz is not declared: a diverged run writes none, and a diverged cell is a
    # result that must reach the tables, not a failed job.
    output:
        metrics=RUNS / "{cell}" / "metrics.json",
    log:
        LOGS / "train" / "{cell}.log",
    benchmark:
        TIMINGS / "train" / "{cell}.tsv"
    threads: config["threads"]
    resources:
        gpu=gpus,
    params:
        out=lambda wildcards: RUNS / wildcards.cell,
        device=lambda wildcards: device(),
        data_dir=DATA_DIR,
    conda:
        ENV
    shell:
        "stnbench train --spec {input.spec} --out {params.out} --device {params.device}"
        " --threads {threads} --data-dir {params.data_dir} > {log} 2>&1"
