rule consolidate:
    input:
        metrics=per_checkpoint(f"{OUT}/metrics_checkpoint_{{ckpt}}.json"),
        replicates=per_checkpoint(f"{OUT}/bootstrap/checkpoint_{{ckpt}}.npz"),
        inception_real=f"{OUT}/features/inception/real.npz",
        clip_status=f"{OUT}/features/clip/model.json",
    output:
        json=f"{OUT}/consolidated_results.json",
        csv=f"{OUT}/metrics.csv",
    log:
        f"{LOGS}/consolidate.log",
    conda:
        ENV
    params:
        ranking=config["ranking"],
        bands=[config["report"]["fid_bands"], config["report"]["clip_bands"]],
    script:
        "../../scripts/consolidate.py"


rule report:
    input:
        json=f"{OUT}/consolidated_results.json",
        manifests=per_checkpoint(f"{OUT}/manifests/checkpoint_{{ckpt}}.json"),
    output:
        md=f"{OUT}/report.md",
        html=f"{OUT}/report.html",
        plots=directory(f"{OUT}/plots"),
    log:
        f"{LOGS}/report.log",
    conda:
        ENV
    params:
        report=config["report"],
    script:
        "../../scripts/report.py"
