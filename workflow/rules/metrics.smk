rule metrics_checkpoint:
    input:
        # every enabled extractor's features of this checkpoint and of the real set
        unpack(metrics_features),
        manifest=f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
        real_manifest=f"{OUT}/manifests/real.json",
    output:
        metrics=f"{OUT}/metrics_checkpoint_{{ckpt}}.json",
        replicates=f"{OUT}/bootstrap/checkpoint_{{ckpt}}.npz",
    log:
        f"{LOGS}/metrics/{{ckpt}}.log",
    conda:
        ENV
    # the bootstrap replicates are split over these CPUs, with the same bits for any number
    threads: config["metrics_threads"]
    params:
        settings=ANALYSIS,
        # each image with its prompt (ckpt_eval/inputs/prompts.py), paired in the job
        pairing=checkpoint_pairing,
        workflow_dir=WORKFLOW_DIR,
    script:
        "../../scripts/metrics.py"
