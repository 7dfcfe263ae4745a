"""Feature extraction jobs: organize a set (its manifest), extract its features, write them
as a cached file recording their sources.

torch, the Inception network and transformers are imported inside the functions that use them:
a model job whose model is unavailable then only writes its note (in ~0.1 s instead of the 1.5 s
that importing torch takes), which is most of the cost of adding a checkpoint to such a run.

The model extractors (clip, cmmd, dinov2, pickscore; `ckpt_eval.features.extractors`) share two
jobs, `model_status` and `model_features`, which call the extractor's torch module
(`Extractor.module`): its `load(key, model, processor, device) -> (loaded, info)` and
`extract(key, loaded, paths, prompts, device, batch_size) -> (arrays, meta)`.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.cache import save_features, streamed_arrays
from ckpt_eval.features.extractors import EXTRACTORS
from ckpt_eval.features.moments import kept_rows
from ckpt_eval.inputs.manifest import as_manifest, build_manifest
from ckpt_eval.inputs.prompts import pair_prompts
from ckpt_eval.jsonio import read_json, write_json
from ckpt_eval.timing import phase

log = logging.getLogger(__name__)


def inception_network(weights: str | None, out: str | Path) -> None:
    """The Inception network, ready to run, as a file every Inception job of the run loads
    (rule `inception_network`): the bundled TorchScript file checked against its sha256, its
    batch norms folded into the convolutions (`ckpt_eval.extract.inception_eager`), saved as
    safetensors with the weights file's name and sha256. A network the eager copy does not
    recognise is recorded as such, and each job then runs its TorchScript as it is."""
    with phase("import torch"):
        import torch

        from ckpt_eval.extract import inception
        from ckpt_eval.extract.inception_eager import save_network

    cpu = torch.device("cpu")
    path = inception.weights_path(weights)
    with phase("weights"):
        layers, digest = inception.load_inception(path, cpu)
        net = inception.fast_copy(layers, cpu, verified=digest == inception.BUNDLED_SHA256)
    metadata = {"weights_file": path.name, "weights_sha256": digest}
    with phase("write"):
        if net is layers:  # no eager copy of this network: the jobs load the TorchScript
            save_network(torch.nn.Sequential(), out, {**metadata, "network": "torchscript"})
        else:
            save_network(net, out, {**metadata, "network": "eager"})


def organized(image_set: dict[str, Any], threads: int, decode: bool = True) -> dict[str, Any]:
    """The set's sealed manifest, from its `organize` parameter (workflow/rules/common.smk):
    each image decoded whole and hashed, on `threads` threads, before torch is imported, so a
    bad image stops the job in a fraction of a second. Every job that extracts features of a
    set makes it this way, the Inception job writing it for the metrics and the report: a
    model extractor's job then waits for no other job, and a rerun of one extractor (new
    weights, a new model) reruns no other. The metrics refuse features whose images' hashes
    differ from the manifest's (an image changed between two jobs). `decode`: see
    `build_manifest`."""
    with phase("organize"):
        return build_manifest(
            image_set["name"],
            image_set["images"],
            image_set["root"],
            image_set["on_bad_image"],
            threads,
            decode,
        )


def model_set(
    image_set: dict[str, Any], status_path: str | Path, threads: int, enabled: bool = True
) -> dict[str, Any]:
    """The manifest a model extractor's job works from (`organized`). A job that computes
    nothing (its model could not be loaded, or the set is left out: `enabled` false) with
    `on_bad_image: error` only hashes its images: the Inception job of the set decodes them
    and stops the run for a bad one, and the file's image hashes and prompts are the same. So a
    run with CLIP off decodes each set once, not twice (a minute for 50,000 real images)."""
    status = read_json(status_path)
    computes = bool(status.get("available")) and enabled
    return organized(image_set, threads, computes or image_set["on_bad_image"] != "error")


def _network(weights: str | None, network: str | Path | None, device: Any) -> tuple[Any, str, str]:
    """(the network to run, the weights file's sha256, which network it is): the run's network
    file when there is one with the eager copy, else built here from the weights file."""
    from ckpt_eval.extract import inception
    from ckpt_eval.extract.inception_eager import NETWORK_VERSION, load_network, network_metadata

    if network is not None:
        try:
            meta = network_metadata(network)
            if meta.get("network") == "eager" and meta.get("version") == NETWORK_VERSION:
                return load_network(network, device), meta["weights_sha256"], "eager copy"
        except Exception as exc:  # a damaged file: the weights file gives the same network
            log.warning("inception: network file %s not used (%s); built here", network, exc)
    layers, digest = inception.load_inception(inception.weights_path(weights), device)
    net = inception.fast_copy(layers, device, verified=digest == inception.BUNDLED_SHA256)
    return net, digest, "eager copy" if net is not layers else "TorchScript"


def inception_features(
    manifest: dict[str, Any] | str | Path,
    out: str | Path,
    weights: str | None,
    device_name: str,
    batch_size: int,
    num_workers: int,
    max_rows: int | None = None,
    seed: int = 0,
    network_file: str | Path | None = None,
) -> None:
    """Features of one image set (its manifest as `organized` made it, or a manifest file).
    With `max_rows` (the real set, config `max_real_features`)
    and more images than that, the file keeps a seeded subset of the rows and the float64 mean
    and covariance of all of them, accumulated while extracting (`ckpt_eval.features.moments`).
    `network_file`: the run's network (`inception_network`), loaded in a few milliseconds where
    checking, loading and folding the weights file takes a second. The first images are decoded
    while torch is imported (`ckpt_eval.extract.predecode`), unless the job runs on a GPU."""
    from ckpt_eval.extract.predecode import Predecoded

    manifest = as_manifest(manifest)
    paths = [image["path"] for image in manifest["images"]]
    gpu = device_name.startswith(("cuda", "mps"))
    with Predecoded([] if gpu else paths) as ahead:
        with phase("import torch"):
            import torch

            from ckpt_eval.extract import inception
            from ckpt_eval.extract.device import resolve_device

        device = resolve_device(device_name)
        path = inception.weights_path(weights)
        with phase("weights"):
            net, digest, network = _network(weights, network_file, device)
        keep = kept_rows(len(paths), max_rows, seed)
        workers = inception.decode_workers(num_workers, device)
        log.info(
            "inception %s: %d images on %s, %d torch threads, batch %d, %d decode workers "
            "(num_workers %d), %s network",
            manifest["name"],
            len(paths),
            device,
            torch.get_num_threads(),
            batch_size,
            workers,
            num_workers,
            network,
        )
        with phase("extract"):
            ready = ahead.stop()
            if workers:  # DataLoader workers (spare CPUs, a GPU) decode on their own
                ready = {}
            log.info("inception: %d images decoded while torch was imported", len(ready))
            name = f"inception {manifest['name']}"
            streamed = inception.extract_streamed(
                paths, net, device, keep, batch_size, workers, name, ready
            )
    meta = {
        "set": manifest["name"],
        "extractor": inception.EXTRACTOR_ID,
        "weights_file": path.name,
        "weights_sha256": digest,
        "preprocessing": inception.PREPROCESSING,
        "device": str(device),
        "image_sha256": [image["sha256"] for image in manifest["images"]],
    }
    with phase("write"):
        save_features(out, streamed_arrays(streamed), meta)


def model_status(
    key: str,
    model: str,
    required: bool,
    device_name: str,
    out: str | Path,
    processor: str | None = None,
) -> None:
    """Load a model extractor's model once (rule `<key>_model`); if it cannot be loaded and
    `<section>.required` is false, record why, for its feature files and the report.

    The status JSON: `available`, `reason` and `model` always; when loaded, what the extractor's
    module describes (`revision`, `projection_dim` or `hidden_size`, ...), `processor` when it is
    not the model's own, and `weights_sha256` of a local folder (it has no hub revision).
    """
    from ckpt_eval.extract.hub import NotLoaded, folder_weights_sha256, model_load_error, unloadable

    extractor = EXTRACTORS[key]
    # a model that cannot be there fails before torch and transformers are imported (~3 s)
    why = unloadable(model)
    if why is None:
        with phase("import torch"):
            from ckpt_eval.extract.device import resolve_device

            module = importlib.import_module(extractor.module)
        device = resolve_device(device_name)
    try:
        if why is not None:
            raise model_load_error(extractor, model, NotLoaded(why), processor is None)
        with phase("load model"):
            _, info = module.load(key, model, processor, device)
        status: dict[str, Any] = {"available": True, "reason": None, **info}
        if Path(model).is_dir():
            status["weights_sha256"] = folder_weights_sha256(model)
    except CkptEvalError as exc:
        if required:
            raise
        status = {
            "available": False,
            "model": model,
            "reason": f"{extractor.section}.required is false and the model could not be "
            f"loaded: {exc.what}",
        }
        if processor is not None:
            status["processor"] = processor
    write_json(status, out)


def model_features(
    key: str,
    manifest: dict[str, Any] | str | Path,
    pairing: dict[str, Any] | None,
    status_path: str | Path,
    out: str | Path,
    device_name: str,
    batch_size: int,
    enabled: bool = True,
) -> None:
    """A model extractor's arrays of one set (rules `<key>_checkpoint` and `<key>_real`): the
    set's manifest as its job made it (`organized`), or a manifest file.

    With `pairing` (a checkpoint of an extractor that embeds prompts: clip, pickscore; the
    keyword arguments of `pair_prompts`) also each image's own prompt, paired first: an image
    without one stops the job before any model is loaded, even with no model. A model its status
    says could not be loaded gives a file with no arrays, `available: false` and the status's
    reason, never numbers; so does a real set the config leaves out (`enabled` false: clip's
    with `memorization.clip: false`).

    Meta: `set`, `image_sha256`, `available`, `reason`, `model`, `revision`, `weights_sha256`
    (from the status), `prompts` (each image's, with pairing); when computed also `extractor`
    (`<key>:<model>`), `device`, `preprocessing`, `truncated` (the prompts over 77 tokens),
    `processor` (pickscore), `image_size` (cmmd, dinov2).
    """
    extractor = EXTRACTORS[key]
    manifest = as_manifest(manifest)
    pairs = pair_prompts(manifest, **pairing) if pairing is not None and extractor.prompts else None
    status = read_json(status_path)
    meta: dict[str, Any] = {
        "set": manifest["name"],
        "image_sha256": [image["sha256"] for image in manifest["images"]],
        **{
            k: status.get(k) for k in ("available", "reason", "model", "revision", "weights_sha256")
        },
    }
    if pairs is not None:  # what its text embeddings are (or would be) made from
        meta["prompts"] = [p["prompt"] for p in pairs["pairs"]]
    if extractor.has_processor:
        meta["processor"] = status.get("processor")
    if status["available"] and not enabled:
        meta.update(available=False, reason=extractor.real_off)
    if not meta["available"]:
        save_features(out, {}, meta)
        return
    with phase("import torch"):
        from ckpt_eval.extract.device import resolve_device

        module = importlib.import_module(extractor.module)
    device = resolve_device(device_name)
    with phase("load model"):
        loaded, _ = module.load(key, status["model"], status.get("processor"), device)
    meta["device"] = str(device)
    meta["extractor"] = f"{key}:{status['model']}"
    meta["preprocessing"] = extractor.preprocessing
    paths = [image["path"] for image in manifest["images"]]
    prompts = meta.get("prompts")
    log.info(
        "%s %s: %d images on %s, batch %d", key, manifest["name"], len(paths), device, batch_size
    )
    with phase("extract"):
        arrays, extra = module.extract(key, loaded, paths, prompts, device, batch_size)
    meta.update(extra)
    with phase("write"):
        save_features(out, arrays, meta)
