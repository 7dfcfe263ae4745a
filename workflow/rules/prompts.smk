rule pair_prompts:
    input:
        manifest=f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
        prompts=config["prompts"],
    output:
        f"{OUT}/prompts/{{ckpt}}.json",
    params:
        fallback=config["fallback_prompt"],
    log:
        f"{LOGS}/prompts/{{ckpt}}.log",
    conda:
        ENV
    script:
        "../../scripts/prompts.py"
