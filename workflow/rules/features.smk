from ckpt_eval.features.extractors import model_extractors
from ckpt_eval.features.moments import subset_param


# The Inception network once per run, its weights checked and folded (ckpt_eval.extract.
# inception_eager), as the safetensors file every Inception job loads in milliseconds. The
# weights file is a parameter by its fingerprint, not an input: a reinstall that only touches
# the bundled file reruns nothing.
rule inception_network:
    output:
        f"{OUT}/features/inception/network.safetensors",
    log:
        f"{LOGS}/features/inception_network.log",
    conda:
        ENV
    params:
        weights=config["fid"]["inception_weights"],
        fingerprint=ANALYSIS["inception"],
    script:
        "../../scripts/inception_network.py"


# One checkpoint's manifest and Inception features; the real set's (below) are the same rule.
# The job first organizes the set: each image decoded whole and hashed (on its threads), the
# sealed manifest written (ckpt_eval/inputs/manifest.py), a bad image stopping it or listed as
# skipped; then the features of the manifest's images. Every feature job of a set organizes
# it so, for itself (ckpt_eval.extract.feature_jobs.organized): no organize job, so a job less
# per checkpoint (a shorter plan, one process start fewer before a new checkpoint's
# extraction), and no feature job waits for another's (new Inception weights rerun no CLIP
# job). A set's image files are a parameter, not inputs (`organize_param`, common.smk): their
# digest reruns the job when one changes.
rule inception_checkpoint:
    input:
        checkpoint_inputs if GENERATE else [],
        network=f"{OUT}/features/inception/network.safetensors",
    output:
        manifest=f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
        features=f"{OUT}/features/inception/checkpoint_{{ckpt}}.npz",
    log:
        f"{LOGS}/features/inception_{{ckpt}}.log",
    conda:
        ENV
    threads: config["feature_threads"]
    resources:
        gpu=GPU,
    params:
        organize=checkpoint_organize,
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
        network=f"{OUT}/features/inception/network.safetensors",
    output:
        manifest=f"{OUT}/manifests/real.json",
        features=f"{OUT}/features/inception/real.npz",
    log:
        f"{LOGS}/features/inception_real.log",
    params:
        organize=REAL_ORGANIZE,
        # above max_real_features images: keep a seeded subset of rows, stream the statistics
        subset=subset_param(
            len(REAL_IMAGES), config["max_real_features"], config["seed"]
        ),


# The model extractors (ckpt_eval.features.extractors: clip always, cmmd, dinov2 and pickscore
# when enabled), three rules each: `<key>_model` loads the model once and says whether it could
# be (features/<key>/model.json), `<key>_checkpoint` one checkpoint's features (with each
# image's own prompt for clip and pickscore), `<key>_real` the real set's (not for pickscore;
# clip's holds no arrays with memorization.clip false), each organizing its set as the
# Inception job does (the metrics refuse features of other images than the manifest's). The
# scripts read the extractor from the rule's name.
for EXTRACTOR in model_extractors(config):

    rule:
        name:
            f"{EXTRACTOR.key}_model"
        output:
            f"{OUT}/features/{EXTRACTOR.key}/model.json",
        log:
            f"{LOGS}/features/{EXTRACTOR.key}_model.log",
        conda:
            ENV
        resources:
            gpu=GPU,
        params:
            **model_params(EXTRACTOR),
        script:
            "../../scripts/model_status.py"

    rule:
        name:
            f"{EXTRACTOR.key}_checkpoint"
        input:
            checkpoint_inputs if GENERATE else [],
            status=f"{OUT}/features/{EXTRACTOR.key}/model.json",
        output:
            f"{OUT}/features/{EXTRACTOR.key}/checkpoint_{{ckpt}}.npz",
        log:
            f"{LOGS}/features/{EXTRACTOR.key}_{{ckpt}}.log",
        conda:
            ENV
        threads: config["feature_threads"]
        resources:
            gpu=GPU,
        params:
            **pairing_param(EXTRACTOR),
            organize=checkpoint_organize,
            torch_threads=config["feature_threads"],
            device=config["device"],
            batch_size=EXTRACTOR.batch_size(config),
        script:
            "../../scripts/model_features.py"

    if EXTRACTOR.real(config):

        rule:
            name:
                f"{EXTRACTOR.key}_real"
            input:
                status=f"{OUT}/features/{EXTRACTOR.key}/model.json",
            output:
                f"{OUT}/features/{EXTRACTOR.key}/real.npz",
            log:
                f"{LOGS}/features/{EXTRACTOR.key}_real.log",
            conda:
                ENV
            threads: config["feature_threads"]
            resources:
                gpu=GPU,
            params:
                organize=REAL_ORGANIZE,
                torch_threads=config["feature_threads"],
                device=config["device"],
                batch_size=EXTRACTOR.batch_size(config),
                enabled=EXTRACTOR.real_enabled(config),
            script:
                "../../scripts/model_features.py"
