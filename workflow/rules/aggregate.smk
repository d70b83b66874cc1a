# `stnbench results tables` reads every metrics.json under RUNS and every bench JSON under
# BENCH; the inputs below only make sure that the whole grid is there first.
rule aggregate:
    input:
        metrics=all_metrics,
        bench=all_benches,
        viz=all_viz,
        gallery=all_galleries,
    output:
        report(
            RESULTS / "tables" / "gtsrb.csv",
            caption="../report/gtsrb.rst",
            category="Tables",
            labels={"table": "GTSRB: IDSIA vs Moodstocks"},
        ),
        report(
            RESULTS / "tables" / "table1.csv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "distorted MNIST (STN Table 1)"},
        ),
        report(
            RESULTS / "tables" / "robustness.csv",
            caption="../report/robustness.rst",
            category="Tables",
            labels={"table": "robustness"},
        ),
        report(
            RESULTS / "tables" / "cost.csv",
            caption="../report/cost.rst",
            category="Tables",
            labels={"table": "cost"},
        ),
        report(
            RESULTS / "tables" / "significance.csv",
            caption="../report/significance.rst",
            category="Tables",
            labels={"table": "significance"},
        ),
        report(
            RESULTS / "tables" / "committee.csv",
            caption="../report/committee.rst",
            category="Tables",
            labels={"table": "committees of columns"},
        ),
        report(
            RESULTS / "plots" / "accuracy_vs_severity.png",
            caption="../report/accuracy_vs_severity.rst",
            category="Plots",
            labels={"plot": "accuracy vs severity"},
        ),
        report(
            RESULTS / "plots" / "accuracy_vs_params.png",
            caption="../report/accuracy_vs_params.rst",
            category="Plots",
            labels={"plot": "accuracy vs parameters"},
        ),
        report(
            RESULTS / "plots" / "throughput.png",
            caption="../report/throughput.rst",
            category="Plots",
            labels={"plot": "throughput"},
        ),
        report(
            RESULTS / "plots" / "training_curves.png",
            caption="../report/training_curves.rst",
            category="Plots",
            labels={"plot": "training curves"},
        ),
        expand(RESULTS / "tables" / "{table}.{ext}", table=TABLES, ext=("md", "tex")),
        expand(RESULTS / "plots" / "{plot}.pdf", plot=PLOTS),
    log:
        LOGS / "aggregate.log",
    params:
        runs=RUNS,
        bench=BENCH,
        out=RESULTS,
        notes=notes_arguments,
    conda:
        ENV
    shell:
        "stnbench results tables --runs {params.runs} --bench {params.bench} --out {params.out}"
        " {params.notes} > {log} 2>&1"


# `snakemake tables`: the same tables and plots from whatever metrics are present, without
# building the grid, so that nothing is trained and no data is needed.
rule tables:
    log:
        LOGS / "tables.log",
    localrule: True
    params:
        runs=RUNS,
        bench=BENCH,
        out=RESULTS,
        notes=lambda wildcards: notes_arguments(strict=False),
    conda:
        ENV
    shell:
        "stnbench results tables --runs {params.runs} --bench {params.bench} --out {params.out}"
        " {params.notes} > {log} 2>&1"
