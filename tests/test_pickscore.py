"""PickScore: against the authors' inference formula in float64 and a written-out loop, per
prompt, replicates as resampled means, an unavailable model as None with the reason, and end to
end through the registry (paired comparisons, ranking, CSV, charts, both reports)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import checkpoint_from_arrays, config, through_every_output, write_png

from ckpt_eval.analysis.bootstrap import resample_counts
from ckpt_eval.analysis.checkpoint import analysis_settings, evaluate
from ckpt_eval.analysis.consolidate import csv_columns
from ckpt_eval.metrics.pickscore import MEASURE, pickscores
from ckpt_eval.metrics.registry import measures, quantity

LOGIT_SCALE = np.array([100.0], np.float32)  # 1 element, as the extractor stores it


def _pickscore_reference(image_embs: np.ndarray, text_embs: np.ndarray, scale: float):
    """The PickScore README's inference code in numpy: normalise both, then
    `model.logit_scale.exp() * (text_embs @ image_embs.T)`; an image's score against its own
    prompt is the diagonal."""
    image_embs = image_embs / np.linalg.norm(image_embs, axis=-1, keepdims=True)
    text_embs = text_embs / np.linalg.norm(text_embs, axis=-1, keepdims=True)
    return np.diag(scale * (text_embs @ image_embs.T))


def _loop(image: np.ndarray, text: np.ndarray, scale: float) -> list[float]:
    out = []
    for a, b in zip(image.tolist(), text.tolist(), strict=True):
        dot = sum(p * q for p, q in zip(a, b, strict=True))
        out.append(
            scale * dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))
        )
    return out


def _embeddings(n: int, d: int, seed: int, quality: float = 0.0):
    """Image and prompt embeddings whose alignment grows with `quality`, at varied norms."""
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n, d))
    image = quality * text + rng.normal(size=(n, d))
    return image * rng.uniform(0.5, 9.0, size=(n, 1)), text * rng.uniform(0.5, 9.0, size=(n, 1))


def test_matches_the_reference_formula_in_float64() -> None:
    image, text = _embeddings(40, 24, seed=1, quality=0.3)
    scores = pickscores(image, text, LOGIT_SCALE)
    expected = _pickscore_reference(image, text, 100.0)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    np.testing.assert_allclose(scores, _loop(image, text, 100.0), rtol=1e-12)
    assert scores.dtype == np.float64 and (scores < 0).any()  # no clamp, unlike CLIP score


def test_row_i_pairs_with_row_i_and_the_scale_is_the_models() -> None:
    image, text = _embeddings(6, 8, seed=2, quality=1.0)
    scores = pickscores(image, text, [50.0])
    assert scores == pytest.approx(pickscores(image, text, [100.0]) / 2)
    swapped = pickscores(image, text[::-1], [50.0])
    assert swapped[0] == pytest.approx(_loop(image[:1], text[-1:], 50.0)[0])


def test_rejects_bad_inputs() -> None:
    image, text = _embeddings(4, 3, seed=3)
    with pytest.raises(ValueError, match="differ"):
        pickscores(image, text[:3], LOGIT_SCALE)
    with pytest.raises(ValueError, match="logit_scale"):
        pickscores(image, text, [1.0, 2.0])
    with pytest.raises(ValueError, match="logit_scale"):
        pickscores(image, text, [np.nan])
    with pytest.raises(ValueError, match="zero"):
        pickscores(np.vstack([image[:3], np.zeros(3)]), text, LOGIT_SCALE)


# --- through the registry ------------------------------------------------------------------------


def _config(**extra: Any) -> dict[str, Any]:
    return config(
        bootstrap={"resamples": 200},
        kid={"subsets": 5, "subset_size": 10},
        ranking={"weights": {"fid": 0.5, "pickscore": 0.5}},
        **extra,
    )


def _checkpoint(name, fake, real, settings, features, status, image=None):
    """Every checkpoint's image k has prompt k % 5; PickScore has no real set."""
    prompts = [f"prompt {k % 5}" for k in range(len(fake))]
    return checkpoint_from_arrays(
        name, fake, real, settings, image=image, prompts=prompts, features=features, status=status
    )


OK = {"pickscore": {"available": True, "reason": None, "truncated": []}}


def test_registry_lists_pickscore() -> None:
    assert "pickscore" in [m.key for m in measures()]
    q = quantity("pickscore")
    assert (q.better, q.point, q.interval, q.spread, q.per_image, q.table) == (
        "higher",
        "pickscore_mean",
        "pickscore_ci",
        "pickscore_std",
        "pickscore",
        "main",
    )
    assert q.compare and q.rankable and q.chart


def test_end_to_end_json_csv_charts_reports(tmp_path: Path) -> None:
    run_config = _config(pickscore={"enabled": True})
    settings = analysis_settings(run_config)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 8))
    png = write_png(tmp_path)
    rows, replicates = [], {}
    # the same prompts' embeddings for every checkpoint; the images align better and better
    _, text = _embeddings(20, 16, seed=5)
    for name, quality in (("step-100", 0.2), ("step-200", 0.5), ("step-300", 1.0)):
        fake = rng.normal(size=(20, 8))
        image = quality * text + np.random.default_rng(6).normal(size=(20, 16)) * 3
        arrays = {"image": image, "text": text, "logit_scale": LOGIT_SCALE}
        data, result = _checkpoint(name, fake, real, settings, {"pickscore": arrays}, OK, png)
        result, reps = evaluate(data, result)
        row = result.to_json()
        expected = _pickscore_reference(image, text, 100.0)
        assert [r["pickscore"] for r in row["per_image"]] == pytest.approx(expected, rel=1e-12)
        assert row["pickscore_mean"] == pytest.approx(expected.mean(), rel=1e-12)
        assert row["pickscore_std"] == pytest.approx(expected.std(), rel=1e-12)
        first = row["pickscore_per_prompt"][0]
        assert first["prompt"] == "prompt 0" and first["n"] == 4
        assert first["mean"] == pytest.approx(expected[::5].mean(), rel=1e-12)
        assert row["pickscore_ci"]["low"] < row["pickscore_mean"] < row["pickscore_ci"]["high"]
        assert len(reps["pickscore"]) == 200
        rows.append(row)
        replicates[name] = reps
    out = through_every_output(rows, replicates, run_config, tmp_path)
    by_name = out.by_name
    assert out.result["ranking"]["weights_used"]["metrics"] == ["fid", "pickscore"]
    diff = by_name["step-100"]["vs_top"]["pickscore"]
    # same prompts, same positions: the images are paired, and the difference is clear
    assert diff["pairing"] == "paired" and diff["significant"]
    assert diff["difference"] == pytest.approx(
        by_name["step-100"]["pickscore_mean"] - by_name["step-300"]["pickscore_mean"]
    )
    names = [c for c, _ in csv_columns()]
    assert names.index("pickscore_mean") < names.index("score") < names.index("pickscore_ci_low")
    assert [float(r["pickscore_mean"]) for r in out.table] == pytest.approx(
        [by_name[n]["pickscore_mean"] for n in ("step-100", "step-200", "step-300")]
    )
    assert out.pngs["pickscore"].startswith(b"\x89PNG")
    for text_ in (out.markdown, out.html):
        assert "PickScore" in text_ and "PickScore − top" in text_
        assert "yuvalkirstain/PickScore_v1" in text_
        assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in text_
    assert f"{by_name['step-300']['pickscore_mean']:.2f}" in out.markdown
    # its per-prompt table, from the registry's per_prompt field like CLIP score's
    assert "### PickScore per prompt" in out.markdown and "PickScore per prompt</h3>" in out.html
    first = [by_name[n]["pickscore_per_prompt"][0] for n in ("step-100", "step-200", "step-300")]
    cells = " | ".join(
        f"{c['mean']:.2f} [{c['ci']['low']:.2f}, {c['ci']['high']:.2f}]" for c in first
    )
    assert f"| {first[0]['prompt']} | {cells} |" in out.markdown


def _one(features, status):
    settings = analysis_settings(_config())
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(20, 6)), rng.normal(size=(12, 6))
    data, result = _checkpoint("step-1", fake, real, settings, features, status)
    result, reps = evaluate(data, result)
    return data, result.to_json(), reps


def test_unavailable_model_gives_none_and_says_why() -> None:
    reason = (
        "could not load yuvalkirstain/PickScore_v1: not in the local cache and the hub is "
        "unreachable"
    )
    _, row, reps = _one({"pickscore": {}}, {"pickscore": {"available": False, "reason": reason}})
    assert row["pickscore_mean"] is None and row["pickscore_std"] is None
    assert row["pickscore_ci"] is None and "pickscore" not in reps
    assert all(r["pickscore"] is None for r in row["per_image"])
    assert {"code": "pickscore.unavailable", "reason": reason} in row["notices"]
    assert f"PickScore not computed: {reason}." in row["warnings"]


def test_off_is_quiet() -> None:
    _, row, reps = _one({}, {})
    assert row["pickscore_mean"] is None and "pickscore" not in reps
    assert not [n for n in row["notices"] if n["code"].startswith("pickscore")]
    assert all("pickscore" not in r for r in row["per_image"])


def test_replicates_are_the_means_of_the_resampled_images() -> None:
    image, text = _embeddings(12, 8, seed=7, quality=0.5)
    arrays = {"image": image, "text": text, "logit_scale": LOGIT_SCALE}
    data, _, _ = _one({"pickscore": arrays}, OK)
    counts = resample_counts(12, 25, np.random.default_rng(1))
    reps = MEASURE.replicates(data, counts)["pickscore"]
    scores = _pickscore_reference(image, text, 100.0)
    explicit = [np.repeat(scores, c.astype(int)).mean() for c in counts]
    np.testing.assert_allclose(reps, explicit, rtol=1e-12)


def test_truncated_prompts_are_listed_and_said() -> None:
    image, text = _embeddings(12, 8, seed=8)
    arrays = {"image": image, "text": text, "logit_scale": LOGIT_SCALE}
    truncated = [{"prompt": "a very long prompt", "tokens": 91}]
    status = {"pickscore": {"available": True, "reason": None, "truncated": truncated}}
    _, row, _ = _one({"pickscore": arrays}, status)
    assert row["pickscore_truncated"] == truncated
    assert {"code": "pickscore.truncated", "count": 1} in row["notices"]


def test_methodology_only_when_enabled() -> None:
    assert MEASURE.describe(_config()) == []
    config = {**_config(), "pickscore": {"enabled": True, "model": "/models/pickscore"}}
    ((term, text),) = MEASURE.describe(config)
    assert term == "PickScore" and "/models/pickscore" in text
