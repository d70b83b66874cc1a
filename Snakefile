# The stnbench workflow: distorted MNIST and GTSRB, baselines against spatial transformers.
# The grid, presets and rerun behaviour: docs/workflow.md; every config key: config/README.md.
from snakemake.utils import min_version

min_version("9.0")


# A preset given with --configfile (config/demo.yaml, ...) replaces the full reproduction's
# config instead of being merged into it, which would mix two grids.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# The grid's own files as well as the tables: where the tables are newer than every metrics
# file present (as in a clone of committed results), Snakemake would otherwise take them as
# up to date and never look for the cells still missing.
rule all:
    default_target: True
    input:
        rules.aggregate.output,
        all_metrics,
        all_benches,
        all_viz,
        all_galleries,
