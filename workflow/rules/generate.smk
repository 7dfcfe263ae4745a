# Only with a `generate:` section: each checkpoint's samples rendered from the base model and its
# LoRA, one job per checkpoint (with generate.lora_scales, per checkpoint and scale). The output
# is the job's record of its images; the images are not Snakemake outputs, so a stopped job
# keeps what it rendered and its rerun renders the rest.


rule generate:
    input:
        lora=checkpoint_lora,
    output:
        f"{OUT}/generated/{{ckpt}}/images.json",
    log:
        f"{LOGS}/generate/{{ckpt}}.log",
    conda:
        ENV
    threads: config["feature_threads"]
    resources:
        gpu=GPU,
    params:
        checkpoint="{ckpt}",
        # the section's settings at this candidate's LoRA scale
        settings=lambda wildcards: (
            GENERATE.job_params(wildcards.ckpt) if GENERATE else {}
        ),
        device=config["device"],
        torch_threads=config["feature_threads"],
    script:
        "../../scripts/generate.py"
