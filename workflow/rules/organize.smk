# Each image is decoded whole and hashed, on two threads (the manifest is the same on any
# number: its order is the sorted paths').
ORGANIZE_THREADS = 2


# A set's image files are parameters, not inputs: `files` (their paths, sizes and modification
# times as one digest, ckpt_eval/inputs/fingerprint.py) reruns the job when one changes.
rule organize_real:
    output:
        f"{OUT}/manifests/real.json",
    log:
        f"{LOGS}/organize/real.log",
    conda:
        ENV
    threads: ORGANIZE_THREADS
    params:
        images=REAL_IMAGES,
        files=files_fingerprint(REAL_IMAGES),
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
    threads: ORGANIZE_THREADS
    params:
        images=checkpoint_images,
        files=checkpoint_files,
        name="{ckpt}",
        root=SAMPLES_ROOT,
        on_bad_image=config["on_bad_image"],
    script:
        "../../scripts/organize.py"
