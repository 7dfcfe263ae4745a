rule consolidate:
    input:
        metrics=per_checkpoint(f"{OUT}/metrics_checkpoint_{{ckpt}}.json"),
        replicates=per_checkpoint(f"{OUT}/bootstrap/checkpoint_{{ckpt}}.npz"),
        manifests=per_checkpoint(f"{OUT}/manifests/checkpoint_{{ckpt}}.json"),
        inception_real=f"{OUT}/features/inception/real.npz",
        clip_status=f"{OUT}/features/clip/model.json",
        # each model extractor's status: which weights its numbers came from
        models=MODEL_STATUSES,
    output:
        json=report(
            f"{OUT}/consolidated_results.json",
            caption=f"{CAPTIONS}/results.rst",
            category="Evaluation",
            subcategory="Results",
        ),
        csv=report(
            f"{OUT}/metrics.csv",
            caption=f"{CAPTIONS}/metrics.rst",
            category="Evaluation",
            subcategory="Metrics",
        ),
    log:
        f"{LOGS}/consolidate.log",
    conda:
        ENV
    params:
        ranking=config["ranking"],
        bands=[config["report"]["fid_bands"], config["report"]["clip_bands"]],
        workflow_dir=WORKFLOW_DIR,
    script:
        "../../scripts/consolidate.py"


# The page: report.md and the self-contained report.html, and the charts.
rule report:
    input:
        json=f"{OUT}/consolidated_results.json",
        manifests=per_checkpoint(f"{OUT}/manifests/checkpoint_{{ckpt}}.json"),
    output:
        md=f"{OUT}/report.md",
        html=report(
            f"{OUT}/report.html",
            caption=f"{CAPTIONS}/report.rst",
            category="Evaluation",
            subcategory="Report",
        ),
        plots=report(
            directory(f"{OUT}/plots"),
            patterns=["{name}.png"],
            caption=f"{CAPTIONS}/charts.rst",
            category="Evaluation",
            subcategory="Charts",
            labels={"chart": "{name}"},
        ),
    log:
        f"{LOGS}/report.log",
    conda:
        ENV
    params:
        report=config["report"],
        # the contact sheets it links by name: drawn beside it by `contact_sheets`, not before
        grids=GRIDS,
    script:
        "../../scripts/report.py"


# The full prompt x checkpoint grid, grid-001.jpg, ...: a stable path (trackers export it).
# Nothing of the config changes a sheet (report.grid_rows only chooses the page's rows).
rule contact_sheets:
    input:
        json=f"{OUT}/consolidated_results.json",
        manifests=per_checkpoint(f"{OUT}/manifests/checkpoint_{{ckpt}}.json"),
    output:
        grids=report(
            directory(GRIDS),
            patterns=["{name}.jpg"],
            caption=f"{CAPTIONS}/grids.rst",
            category="Evaluation",
            subcategory="Grids",
            labels={"sheet": "{name}"},
        ),
    log:
        f"{LOGS}/contact_sheets.log",
    conda:
        ENV
    script:
        "../../scripts/contact_sheets.py"
