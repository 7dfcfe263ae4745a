# ckpt-eval: which checkpoint of a fine-tuned text-to-image model to ship.
# Stages: [generate ->] features -> metrics -> report [-> export] (one rule file each). A set's
# feature jobs organize it first (each image decoded and hashed; the Inception job writes the
# manifest); the jobs that use prompts (CLIP's features, the metrics) pair each image with its
# own.
from snakemake.utils import min_version

min_version("9.0")


# The bundled demo's config.yaml only when no --configfile is given: a file given is the whole
# config (every key it leaves out takes the schema's default, none comes from the demo).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"


# `snakemake --report results/<run>/snakemake-report.html`: the outputs marked with report()
report: f"{CAPTIONS}/workflow.rst"


# the results, and every file they were made from (a deleted cache is then a missing target,
# rebuilt by a plain rerun: see ckpt_eval/caches.py)
rule all:
    default_target: True
    input:
        RESULT_FILES,
        KEPT_FILES,
        expand(f"{OUT}/export/{{tracker}}", tracker=EXPORTS),
