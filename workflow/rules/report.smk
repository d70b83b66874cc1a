rule viz:
    input:
        metrics=RUNS / "{cell}" / "metrics.json",
        data=lambda wildcards: prepared_data(
            grid().prep_of(wildcards.cell).id, *viz_outputs(wildcards.cell)
        ),
    output:
        picture=report(
            RESULTS / "viz" / "{cell}.png",
            caption="../report/viz.rst",
            category="What the transformers do",
            labels={"cell": "{cell}", "picture": "sampled regions"},
        ),
        moving=report(
            RESULTS / "viz" / "{cell}-moving.gif",
            caption="../report/viz_moving.rst",
            category="What the transformers do",
            labels={"cell": "{cell}", "picture": "growing distortion"},
        ),
        evolution=report(
            RESULTS / "viz" / "{cell}-evolution.gif",
            caption="../report/viz_evolution.rst",
            category="What the transformers do",
            labels={"cell": "{cell}", "picture": "over training"},
        ),
    log:
        LOGS / "viz" / "{cell}.log",
    wildcard_constraints:
        cell=rf"(?!{pipeline.sequence_cell_pattern()})[^/]+",
    params:
        run=lambda wildcards: RUNS / wildcards.cell,
        data_dir=DATA_DIR,
    conda:
        ENV
    shell:
        "stnbench viz --run {params.run} --data-dir {params.data_dir} --out {output.picture}"
        " > {log} 2>&1"


# A run on a sequence task has no severity to grow, so `stnbench viz` writes no moving GIF.
use rule viz as viz_sequence with:
    output:
        picture=report(
            RESULTS / "viz" / "{cell}.png",
            caption="../report/viz.rst",
            category="What the transformers do",
            labels={"cell": "{cell}", "picture": "sampled regions"},
        ),
        evolution=report(
            RESULTS / "viz" / "{cell}-evolution.gif",
            caption="../report/viz_evolution.rst",
            category="What the transformers do",
            labels={"cell": "{cell}", "picture": "over training"},
        ),
    wildcard_constraints:
        cell=pipeline.sequence_cell_pattern(),


rule gallery:
    input:
        lambda wildcards: prepared_data(
            wildcards.prep, RESULTS / "gallery" / f"{wildcards.prep}.png"
        ),
    output:
        report(
            RESULTS / "gallery" / "{prep}.png",
            caption="../report/gallery.rst",
            category="Distortions",
            labels={"data": "{prep}"},
        ),
    log:
        LOGS / "gallery" / "{prep}.log",
    params:
        args=lambda wildcards: jobs.gallery_arguments(grid(), wildcards.prep),
        data_dir=DATA_DIR,
    conda:
        ENV
    shell:
        "stnbench data gallery {params.args} --data-dir {params.data_dir} --out {output}"
        " > {log} 2>&1"
