import importlib.resources
import sys
from pathlib import Path

# this workflow's own library first (the scripts' _checkout.py does the same in the jobs)
sys.path.insert(0, str(Path(workflow.basedir)))

from ckpt_eval.caches import remove_damaged, unwritable
from ckpt_eval.config import validate_config
from ckpt_eval.run_record import check_run_data, record_run_data, run_data
from ckpt_eval.scheduler_exit import cancel_reevaluation_timers, collect_nothing_at_exit
from ckpt_eval.inputs.discover import (
    check_distinct_names,
    check_separate_folders,
    list_images,
)
from ckpt_eval.inputs.fingerprint import files_fingerprint
from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.features.extractors import feature_paths, model_extractors
from ckpt_eval.generate.plan import generation_plan
from ckpt_eval.features.inception_id import weights_path
from ckpt_eval.inputs.layouts import checkpoint_prompts as prompts_by_checkpoint
from ckpt_eval.inputs.layouts import checkpoint_seeds as seeds_by_checkpoint
from ckpt_eval.inputs.layouts import describe_ignored, load_samples
from ckpt_eval.inputs.selection import select_plan, select_samples

validate_config(config)

# the folder of this workflow: the metrics and consolidate jobs record its git commit
WORKFLOW_DIR = str(workflow.basedir)
# the captions of `snakemake --report`: package data of ckpt_eval.report
CAPTIONS = str(importlib.resources.files("ckpt_eval.report") / "captions")
OUT = f"results/{config['run']}"
LOGS = f"{OUT}/logs"
# the prompt x checkpoint grids' contact sheets (grid-*.jpg), which the export sends to the trackers
GRIDS = f"{OUT}/grids"
ENV = "../../envs/ckpt-eval.yaml"
EXTENSIONS = config["samples"]["extensions"]
# with `generate:`, the images the generate jobs render (results/<run>/generated/<checkpoint>/,
# names known from prompts x images per prompt) are the samples; else the samples as
# samples.layout has them: one folder per checkpoint, or a trainer's own output
# samples.checkpoints (set by `python -m ckpt_eval watch` to the complete ones): only those
ONLY = config["samples"]["checkpoints"]
GENERATE = (
    select_plan(generation_plan(config, OUT), ONLY) if config.get("generate") else None
)
SAMPLES = GENERATE.samples() if GENERATE else select_samples(load_samples(config), ONLY)
SAMPLES_ROOT = str(SAMPLES.root)
# the data this config evaluates: results/<run>/ of other data (another config with the same
# `run:` name) is refused before any work (ckpt_eval/run_record.py); recorded at onstart
RUN_DATA = run_data(config, SAMPLES_ROOT)
if workflow.is_main_process:
    check_run_data(OUT, RUN_DATA)
CHECKPOINTS = SAMPLES.checkpoints()
# before any work: no checkpoint's result files may be another's on a case-insensitive disk,
# and no set's images may be counted in another (real images, samples, results' charts)
check_distinct_names(CHECKPOINTS, SAMPLES_ROOT)
check_separate_folders(config["real_images"], SAMPLES_ROOT, OUT)
LEFT_OUT = describe_ignored(SAMPLES)
if LEFT_OUT:
    print(f"ckpt-eval: left out of samples.root: {LEFT_OUT}", file=sys.stderr)
REAL_IMAGES = [
    str(p)
    for p in list_images(
        config["real_images"],
        EXTENSIONS,
        outside={"samples.root": SAMPLES_ROOT, "the results folder": OUT},
    )
]
INCEPTION_WEIGHTS = str(weights_path(config["fid"]["inception_weights"]))
# what the metrics jobs use, with the Inception fingerprint (weights sha256, preprocessing)
ANALYSIS = analysis_settings(config)
PROMPTS = GENERATE.prompts() if GENERATE else prompts_by_checkpoint(SAMPLES, config)
SEEDS = seeds_by_checkpoint(SAMPLES)
MODEL_STATUSES = [
    f"{OUT}/features/{e.key}/model.json" for e in model_extractors(config)
]
PROMPT_SOURCE = (
    GENERATE.prompt_source
    if GENERATE
    else str(config.get("prompts") or SAMPLES.prompt_source or SAMPLES.root)
)


def wants_gpu(device):
    """Whether the feature jobs reserve a GPU (the `gpu` resource): `cuda` and `cuda:N` always;
    `auto` only when the machine that plans the run sees a CUDA device (a workstation with a
    card; a cluster login node usually has none, so set `device: cuda` there); `cpu` and `mps`
    never."""
    if device.startswith("cuda"):
        return True
    if device == "auto":
        # torch is imported only where a GPU driver exists: a no-op rerun stays fast
        from ckpt_eval.gpu_probe import cuda_available

        return cuda_available()
    return False


# 1 on the feature rules when they run on a GPU: `--resources gpu=1` (profiles/default) lets one
# such job use the card at a time; the SLURM executor turns it into `--gpus=1`.
GPU = 1 if wants_gpu(config["device"]) else 0


wildcard_constraints:
    ckpt="[^/]+",


def organize_param(name, images, root, fingerprint=True):
    """What each of a set's feature jobs organizes first (the Inception job writes it as the
    manifest), as one parameter: the set's name, its image files, their root, what to do with
    a bad one, and `files`, the images' paths, sizes and modification times as one digest:
    editing, adding or removing an image
    reruns that set only (ckpt_eval/inputs/fingerprint.py: a parameter, not 32 inputs per
    checkpoint for Snakemake to check). Generated images do not exist yet when the run is
    planned: the generate job's record stands for them (no fingerprint)."""
    return {
        "name": name,
        "images": [str(p) for p in images],
        "files": files_fingerprint(images) if fingerprint else None,
        "root": str(root),
        "on_bad_image": config["on_bad_image"],
    }


# the real set's `organize_param` (its Inception job's and each model extractor's)
REAL_ORGANIZE = organize_param("real", REAL_IMAGES, config["real_images"])
# each checkpoint's, made once: its Inception job and each model extractor's job ask for it
_ORGANIZE = {}


def checkpoint_organize(wildcards):
    """The checkpoint's `organize_param`: its own images only."""
    ckpt = wildcards.ckpt
    if ckpt not in _ORGANIZE:
        _ORGANIZE[ckpt] = organize_param(
            ckpt, CHECKPOINTS[ckpt], SAMPLES_ROOT, not GENERATE
        )
    return _ORGANIZE[ckpt]


def checkpoint_inputs(wildcards):
    """What the checkpoint's feature jobs wait for with generate: the generate job's record of
    its images (not Snakemake outputs: see generate.smk)."""
    return [str(GENERATE.record(wildcards.ckpt))]


def checkpoint_lora(wildcards):
    """The checkpoint's LoRA file (none for the base-model baseline): a new file reruns it."""
    lora = GENERATE.loras[wildcards.ckpt] if GENERATE else None
    return [str(lora)] if lora else []


def checkpoint_pairing(wildcards):
    """How this checkpoint's images meet their prompts, as one parameter of the jobs that pair
    them (ckpt_eval/inputs/prompts.py: the prompt-embedding extractors' and the metrics'):
    only its own prompts, so editing the prompt file reruns just the checkpoints whose prompts
    changed; its known seeds ({file: seed}: images of one prompt and seed pair up across
    checkpoints in the comparisons); the prompt file, for messages; the fallback prompt.
    """
    return {
        "prompts": PROMPTS[wildcards.ckpt],
        "seeds": SEEDS.get(wildcards.ckpt, {}),
        "prompt_file": PROMPT_SOURCE,
        "fallback": config["fallback_prompt"],
    }


def metrics_features(wildcards):
    """The feature files a checkpoint's metrics job reads, one or two per extractor."""
    return feature_paths(OUT, config, wildcards.ckpt)


def grid_outputs(wildcards):
    """The prompt x checkpoint grids (results/<run>/grids/grid-*.jpg) when a rule of the
    workflow makes them, so the export waits for them; the job reads whatever sheets that folder
    has.
    """
    return [
        str(path)
        for rule in workflow.rules
        for path in rule.output
        if str(path) == GRIDS or str(path).startswith(f"{GRIDS}/")
    ]


def per_checkpoint(pattern):
    return expand(pattern, ckpt=list(CHECKPOINTS))


def model_params(extractor):
    """A model extractor's `<key>_model` parameters: model, required, device, and the
    processor where it is not the model's own (pickscore). A new value reruns its jobs only.
    """
    params = {
        "model": extractor.model(config),
        "required": extractor.required(config),
        "device": config["device"],
    }
    if extractor.has_processor:
        params["processor"] = extractor.processor(config)
    return params


def pairing_param(extractor):
    """The checkpoint's pairing, for the extractors that embed each image's own prompt."""
    return {"pairing": checkpoint_pairing} if extractor.prompts else {}


def slurm_jobs(dag):
    """The cluster jobs a SLURM run would submit: jobs and group jobs that need to run, not
    local ones or ones that run nothing (the target rule)."""
    for job in dag.get_jobs_or_groups():
        members = job.jobs if job.is_group() else [job]
        if job.is_local or all(j.is_norun for j in members):
            continue
        if any(dag.needrun(j) for j in members):
            yield job


# A SLURM run (`--profile profiles/slurm`) stops here, before its first sbatch, when a job asks
# for more than any node of its partition has or the executor could not see jobs end
# (ckpt_eval/cluster.py): SLURM would otherwise keep it waiting forever without a word.
onstart:
    record_run_data(OUT, RUN_DATA)
    if workflow.executor_plugin and workflow.executor_plugin.name == "slurm":
        from ckpt_eval.cluster import check_slurm_run

        check_slurm_run(
            slurm_jobs(workflow.dag),
            workflow.executor_settings.status_command,
            workflow.executor_settings.init_seconds_before_status_checks,
        )


# The process ends with its run, not when Snakemake's last job-rate timer fires up to a second
# later, nor after the collector has walked its heap (ckpt_eval/scheduler_exit.py).
if workflow.is_main_process:
    collect_nothing_at_exit()


onsuccess:
    cancel_reevaluation_timers(workflow.scheduler)


onerror:
    cancel_reevaluation_timers(workflow.scheduler)


# Caches that heal (ckpt_eval/caches.py): every file a finished run keeps is a target of `rule
# all`, so a deleted one is rebuilt like any missing target; a damaged one (seen from its size
# and last bytes, no full read) is removed here, so it is rebuilt the same way: its job and
# everything downstream rerun in this same plain run.
RESULT_FILES = [
    f"{OUT}/consolidated_results.json",
    f"{OUT}/metrics.csv",
    f"{OUT}/report.md",
    f"{OUT}/report.html",
]


def kept_files():
    """Every file besides the results that a finished run keeps (manifests, the Inception
    network, features and model statuses, per-checkpoint metrics and replicates, the charts,
    the grid's contact sheets)."""
    files = [f"{OUT}/manifests/real.json", f"{OUT}/plots", GRIDS, *MODEL_STATUSES]
    files.append(f"{OUT}/features/inception/network.safetensors")
    for ckpt in CHECKPOINTS:
        files += [
            f"{OUT}/manifests/checkpoint_{ckpt}.json",
            f"{OUT}/metrics_checkpoint_{ckpt}.json",
            f"{OUT}/bootstrap/checkpoint_{ckpt}.npz",
            *feature_paths(OUT, config, ckpt).values(),
        ]
        if GENERATE:
            files.append(str(GENERATE.record(ckpt)))
    return list(dict.fromkeys(files))


KEPT_FILES = kept_files()
if workflow.is_main_process:
    DAMAGED = unwritable(OUT, KEPT_FILES + RESULT_FILES) or remove_damaged(
        KEPT_FILES + RESULT_FILES
    )
    if DAMAGED:
        print(DAMAGED, file=sys.stderr)
