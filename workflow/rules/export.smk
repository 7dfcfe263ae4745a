# Export to experiment trackers (the `export:` section; all off by default): one job per enabled
# tracker, after consolidate and the report, writing results/<run>/export/<tracker>/ anew from
# consolidated_results.json, the report's charts and the grids. A rerun that changes no result
# exports nothing again.
from ckpt_eval.export import TRACKERS, check_installed
from ckpt_eval.export import enabled as enabled_trackers

check_installed(config)
EXPORTS = enabled_trackers(config)


# A few seconds of file writing: on a cluster it runs where Snakemake runs, not as a SLURM job.
localrules:
    export,


wildcard_constraints:
    tracker="|".join(TRACKERS),


rule export:
    input:
        json=f"{OUT}/consolidated_results.json",
        plots=f"{OUT}/plots",
        grids=grid_outputs,
    output:
        directory(f"{OUT}/export/{{tracker}}"),
    log:
        f"{LOGS}/export/{{tracker}}.log",
    conda:
        ENV
    params:
        grids=GRIDS,
    script:
        "../../scripts/export.py"
