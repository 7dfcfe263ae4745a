"""The report's methodology and insights as plain sentences, shared by the HTML and Markdown.

One source for the definitions, with the run's own settings filled in, so the two renderings
cannot drift apart and every default a reader needs is stated where the numbers are.
"""

from __future__ import annotations

from typing import Any


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def methodology(config: dict[str, Any], result: dict[str, Any]) -> list[tuple[str, str]]:
    """(term, definition) pairs, in the order the report lists them."""
    boot = config["bootstrap"]
    level = _pct(boot["level"])
    used = result["ranking"]["weights_used"]
    mem = config["memorization"]
    items = [
        (
            "FID",
            "(Fréchet Inception Distance, lower is better): Fréchet distance between Gaussians "
            "fitted (float64 mean and unbiased covariance) to Inception-v3 pool3 features "
            "(2048-d) of the real images and of each checkpoint's samples. Network: the TF "
            "2015-12-05 Inception in TorchScript (the one clean-fid and torch-fidelity use); "
            'preprocessing as clean-fid\'s "clean" mode (PIL bicubic resize to 299x299 in '
            "float32, then (x-128)/128). tr sqrt(S1 S2) is the sum of the square roots of the "
            "eigenvalues of sqrt(S1) S2 sqrt(S1), from symmetric eigendecompositions: exact also "
            "when fewer than 2048 images make the covariances rank-deficient. FID is biased "
            "upward for small N: compare checkpoints with equal image counts, and read KID.",
        ),
        (
            "KID",
            "(Kernel Inception Distance, lower is better): unbiased MMD² with the kernel "
            f"(x·y/2048 + 1)³ on the same features, averaged over {config['kid']['subsets']} "
            f"random subsets of min({config['kid']['subset_size']}, n) images (seed "
            f"{config['seed']}); ± is the std over subsets. Small negative values are normal "
            "for an unbiased estimator when the sets are alike.",
        ),
        (
            "CLIP score",
            "(higher is better): 100 · max(cos(image, its own prompt), 0) with "
            f"{config['clip']['model']}, per image as Hessel et al. (2021) define it "
            "(torchmetrics clamps the mean instead; the two agree when no cosine is negative). "
            "Prompts longer than 77 tokens are truncated and listed.",
        ),
        (
            "Intervals",
            f"[low, high] is a {level} bootstrap interval: each checkpoint's samples are "
            f"resampled with replacement {boot['resamples']} times (seed {config['seed']}; the "
            "same resamples for FID, KID and CLIP score), the real set held fixed as the common "
            "reference. The percentile interval of the replicates is shifted by their mean "
            "minus the estimate, since FID on a resample (about 63% distinct images) is biased "
            "upward; the interval says how far the number could move with another set of N "
            "samples. Checkpoints with fewer than 10 images get none.",
        ),
        (
            "Significance",
            "Two checkpoints differ significantly in a metric when the "
            f"{level} bootstrap interval of the difference excludes 0: from their independent "
            "replicates for FID and KID, and from the paired images (same prompt, same position "
            "among its images) for CLIP score when they share prompts. A tier is the best "
            "remaining checkpoint with every checkpoint that does not differ from it "
            "significantly in any ranking metric. No correction for multiple comparisons: among "
            f"many truly equal checkpoints about {_pct(1 - boot['level'])} of pairs look "
            "different by chance.",
        ),
        (
            "Precision, recall, density, coverage",
            f"(Kynkäänniemi et al. 2019; Naeem et al. 2020) on the Inception features, k = "
            f"{config['prdc']['k']}: each point's radius is the distance to its k-th nearest "
            "other point of its own set; a point is inside a ball when its distance is <= the "
            "radius (non-strict, as in Kynkäänniemi et al.'s code and torch-fidelity; Naeem et "
            "al.'s package uses <). Precision: share of samples inside some real ball "
            "(fidelity). Recall: share of real images inside some sample ball (diversity). "
            "Density: real balls per sample / k (can exceed 1). Coverage: share of real balls "
            "holding at least one sample. Real sets over "
            f"{config['prdc']['max_real']} images are subsampled (seeded).",
        ),
        (
            "Memorization screen",
            "for every sample, its most similar real image by cosine similarity of Inception "
            f"features (threshold {mem['threshold']}) and, where the CLIP model is available "
            f"and memorization.clip is on, of CLIP image embeddings (threshold "
            f"{mem['clip_threshold']}); a sample at or above the threshold is a near copy. A "
            f"checkpoint is flagged when more than {_pct(mem['flag_share'])} of its samples are "
            "near copies. The closest pairs are shown side by side: a screen that picks pairs "
            "for a person to look at, not a verdict; heavy edits of a training image can stay "
            "below the threshold.",
        ),
        (
            "Ranking",
            f"score = {used['fid']:.2f} · FID + {used['clip']:.2f} · CLIP score, each min-max "
            "normalised over the checkpoints (1 = best). The recommendation is the earliest "
            "checkpoint of the first significance tier: as good as the best as far as the "
            "samples can show, with less training. When some checkpoint has no interval, an "
            f"earlier checkpoint within {config['ranking']['margin']} of the best score is "
            "preferred instead.",
        ),
        (
            "Overfitting",
            "flagged when a checkpoint after the best-FID one has an FID worse by more than "
            f"{_pct(config['ranking']['overfit_share'])} and significantly so (where intervals "
            "exist), or when the memorization screen flags a checkpoint after it.",
        ),
        (
            "Quality bands",
            f"FID below {' / '.join(str(b) for b in config['report']['fid_bands'])} = Excellent "
            "/ Very good / Good / Fair, else Poor; CLIP score above "
            f"{' / '.join(str(b) for b in config['report']['clip_bands'])} = Excellent / Very "
            "good / Good / Fair, else Poor (the thresholds of the hand-made report).",
        ),
    ]
    fi = config["fid_infinity"]
    if fi["enabled"]:
        items.insert(
            3,
            (
                "FID∞",
                "(Chong & Forsyth 2020): FID on one seeded random subset for each of "
                f"{fi['points']} sizes evenly spaced in 1/N from {_pct(fi['min_fraction'])} of "
                "the samples to all of them, a least-squares line FID = FID∞ + b/N, and its "
                "intercept: FID with the small-N bias removed, comparable across different N. "
                f"Checkpoints with fewer than {fi['min_images']} samples get none.",
            ),
        )
    return items


def insights(config: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """What the numbers say beyond the ranking: overfitting, memorization, small N, tiers."""
    rows = result["checkpoints"]
    rec = result["recommendation"]
    out = []
    overfit = rec.get("overfitting")
    if overfit and overfit["flagged"]:
        out.append(overfit["text"])
    elif overfit:
        out.append(
            f"No checkpoint after the best-FID one ({overfit['best_fid_checkpoint']}) is "
            f"significantly worse by more than {_pct(config['ranking']['overfit_share'])} in FID, "
            "and none after it is flagged by the memorization screen: no sign of overfitting."
        )
    flagged = [r for r in rows if (r.get("memorization") or {}).get("flagged")]
    if flagged:
        out.append(
            "The memorization screen flags "
            + ", ".join(
                f"{r['name']} ({_pct(r['memorization']['inception']['share_flagged'])})"
                for r in flagged
            )
            + ": look at the closest pairs in their sections before shipping them."
        )
    tiers = (result.get("significance") or {}).get("tiers")
    if tiers:
        out.append(
            f"{len(tiers)} significance tier(s): "
            + "; ".join(f"{i}: {', '.join(t)}" for i, t in enumerate(tiers, 1))
            + ". Checkpoints in one tier cannot be told apart with these samples."
        )
    small = [r["name"] for r in rows if r["n_images"] < 2048]
    if small:
        out.append(
            f"{len(small)} checkpoint(s) have fewer than 2048 images: their FID is biased upward "
            "(more so the fewer the images), so KID and the intervals are the better guide."
        )
    return out
