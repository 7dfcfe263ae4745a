rule pair_prompts:
    input:
        manifest=f"{OUT}/manifests/checkpoint_{{ckpt}}.json",
    output:
        f"{OUT}/prompts/{{ckpt}}.json",
    log:
        f"{LOGS}/prompts/{{ckpt}}.log",
    conda:
        ENV
    params:
        prompts=checkpoint_prompts,
        seeds=checkpoint_seeds,
        prompt_file=PROMPT_SOURCE,
        fallback=config["fallback_prompt"],
    script:
        "../../scripts/prompts.py"
