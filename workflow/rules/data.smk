rule prepare_data:
    output:
        DATA_DIR / "prepared" / "{prep}.json",
    params:
        args=lambda wildcards: jobs.prepare_arguments(config, grid().preps[wildcards.prep]),
        data_dir=DATA_DIR,
    log:
        LOGS / "data" / "{prep}.log",
    benchmark:
        TIMINGS / "data" / "{prep}.tsv"
    conda:
        ENV
    shell:
        "stnbench data prepare {params.args} --data-dir {params.data_dir} --json"
        " > {output} 2> {log}"
