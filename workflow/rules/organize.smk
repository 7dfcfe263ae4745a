rule organize_real:
    input:
        REAL_IMAGES,
    output:
        f"{OUT}/manifests/real.json",
    params:
        name="real",
        root=config["real_images"],
        on_bad_image=config["on_bad_image"],
    log:
        f"{LOGS}/organize/real.log",
    conda:
        ENV
    script:
        "../../scripts/organize.py"


rule organize_checkpoint:
    input:
        checkpoint_images,
    output:
        f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
    params:
        name="{ckpt}",
        root=config["samples"]["root"],
        on_bad_image=config["on_bad_image"],
    log:
        f"{LOGS}/organize/{{ckpt}}.log",
    conda:
        ENV
    script:
        "../../scripts/organize.py"
