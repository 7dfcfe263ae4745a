rule organize_real:
    input:
        REAL_IMAGES,
    output:
        f"{OUT}/manifests/real.json",
    log:
        f"{LOGS}/organize/real.log",
    conda:
        ENV
    params:
        images=REAL_IMAGES,
        name="real",
        root=lambda wildcards: config["real_images"],
        on_bad_image=config["on_bad_image"],
    script:
        "../../scripts/organize.py"


rule organize_checkpoint:
    input:
        checkpoint_inputs,
    output:
        f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
    log:
        f"{LOGS}/organize/{{ckpt}}.log",
    conda:
        ENV
    params:
        images=checkpoint_images,
        name="{ckpt}",
        root=SAMPLES_ROOT,
        on_bad_image=config["on_bad_image"],
    script:
        "../../scripts/organize.py"
