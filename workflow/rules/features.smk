from ckpt_eval.features.moments import subset_param


# One checkpoint's Inception features; the real set's (below) are the same rule on its manifest.
rule inception_checkpoint:
    input:
        manifest=f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
    output:
        f"{OUT}/features/inception/checkpoint_{{ckpt}}.npz",
    log:
        f"{LOGS}/features/inception_{{ckpt}}.log",
    conda:
        ENV
    threads: config["feature_threads"]
    resources:
        gpu=GPU,
    params:
        weights=INCEPTION_WEIGHTS,
        fingerprint=ANALYSIS["inception"],
        torch_threads=config["feature_threads"],
        device=config["device"],
        batch_size=config["batch_size"],
        num_workers=config["num_workers"],
    script:
        "../../scripts/inception_features.py"


use rule inception_checkpoint as inception_real with:
    input:
        manifest=f"{OUT}/manifests/real.json",
    output:
        f"{OUT}/features/inception/real.npz",
    log:
        f"{LOGS}/features/inception_real.log",
    params:
        # above max_real_features images: keep a seeded subset of rows, stream the statistics
        subset=subset_param(
            len(REAL_IMAGES), config["max_real_features"], config["seed"]
        ),


rule clip_model:
    output:
        f"{OUT}/features/clip/model.json",
    log:
        f"{LOGS}/features/clip_model.log",
    conda:
        ENV
    resources:
        gpu=GPU,
    params:
        model=config["clip"]["model"],
        required=config["clip"]["required"],
        device=config["device"],
    script:
        "../../scripts/clip_model.py"


# One checkpoint's CLIP image and prompt embeddings; the real set's images (below, for the
# memorization screen) are the same rule without prompts.
rule clip_checkpoint:
    input:
        manifest=f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
        pairs=f"{OUT}/prompts/{{ckpt}}.json",
        status=f"{OUT}/features/clip/model.json",
    output:
        f"{OUT}/features/clip/checkpoint_{{ckpt}}.npz",
    log:
        f"{LOGS}/features/clip_{{ckpt}}.log",
    conda:
        ENV
    threads: config["feature_threads"]
    resources:
        gpu=GPU,
    params:
        torch_threads=config["feature_threads"],
        device=config["device"],
        batch_size=config["batch_size"],
    script:
        "../../scripts/clip_features.py"


use rule clip_checkpoint as clip_real with:
    input:
        manifest=f"{OUT}/manifests/real.json",
        status=f"{OUT}/features/clip/model.json",
    output:
        f"{OUT}/features/clip/real.npz",
    log:
        f"{LOGS}/features/clip_real.log",
    params:
        enabled=config["memorization"]["clip"],
