"""The metric registry: every metric is declared once, in its own module, and every later stage
reads the declaration.

A metric module ends with `MEASURE = Measure(...)`: how to compute it from one checkpoint's
cached features (`compute`), its bootstrap replicates if it has an interval (`replicates`), the
quantities it yields and, for each, its label, unit, direction, where its point and interval sit
in a checkpoint's row, whether it is compared between checkpoints, may carry a ranking weight,
is charted and which CSV columns it fills. Significance, ranking, consolidation, the CSV, the
charts, both renderings of the report and the Snakemake report iterate over `quantities()`;
nothing downstream names a metric. Adding a metric is one module in `ckpt_eval.metrics` and its
test: the registry finds every module of the package that declares a MEASURE.

The split follows torch-fidelity's registry (one entry per metric, looked up by key), with the
difference that an entry here also says how the report shows it, so the report needs no list
of its own.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import numpy as np

Direction = Literal["lower", "higher"]

# `CheckpointData.missing` when an optional extractor is simply not enabled: no notice is due
OFF = "off"


def lookup(row: Mapping[str, Any] | None, path: str | None) -> Any:
    """The value at a dotted path of a checkpoint's row (`prdc.precision`), None if absent."""
    value: Any = row
    for part in (path or "").split(".") if path else ():
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value if path else None


@dataclass(frozen=True)
class Notice:
    """A fact a metric (or an input check) reports about one checkpoint: a code and its numbers.

    The sentence is rendered from it in one place (`ckpt_eval.report.prose`), from the template
    its declaration gives, so tests of what was found assert on codes, not on wording.
    """

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, **dict(self.params)}


@dataclass(frozen=True)
class Quantity:
    """One number per checkpoint that the report shows and the analysis may compare."""

    key: str  # registry key: ranking.weights, replicate arrays and chart files use it
    label: str
    better: Direction
    point: str  # dotted path of the point estimate in a checkpoint's row
    digits: int = 2
    unit: str = ""
    interval: str | None = None  # path of its bootstrap interval ({low, high, level, bias})
    spread: str | None = None  # path of a spread shown as ± where there is no interval
    columns: tuple[tuple[str, str], ...] = ()  # CSV (column, path); default (key, point)
    table: Literal["main", "secondary"] | None = "main"  # which results table shows it
    chart: bool = True
    compare: bool = False  # differences between checkpoints, with intervals, in the report
    rankable: bool = False  # may carry a weight in ranking.weights
    anchor: bool = False  # the metric a checkpoint must have to be ranked at all (FID)
    # per-image field of `per_image` rows: shown in the report's grid cells, and, when compared,
    # the paired differences over shared prompts of checkpoints whose keys differ
    per_image: str | None = None
    per_prompt: str | None = None  # row field of [{prompt, n, mean, std}]: a per-prompt table
    band: str | None = None  # report.<band> thresholds: quality bands as the original report
    overfitting: bool = False  # its worsening after the best checkpoint flags overfitting

    def value(self, row: Mapping[str, Any]) -> float | None:
        return lookup(row, self.point)

    def ci(self, row: Mapping[str, Any]) -> dict[str, float] | None:
        return lookup(row, self.interval)

    def csv_columns(self) -> tuple[tuple[str, str], ...]:
        return self.columns or ((self.key, self.point),)

    def better_value(self, a: float, b: float) -> bool:
        """Whether `a` is better than `b` on this quantity."""
        return a < b if self.better == "lower" else a > b


@dataclass
class CheckpointData:
    """What a metric may read about one checkpoint: its cached features and the real set's.

    `real` holds the real rows kept (all of them, or a seeded subset of a large real set) and
    `real_stats` the whole set's mean and covariance; `clip` is the CLIP feature file's
    content (`available`, `reason`, `truncated`, `image`, `text`), `real_clip` the real set's.
    """

    name: str
    real: np.ndarray
    real_stats: tuple[np.ndarray, np.ndarray] | None
    n_real: int
    fake: np.ndarray
    clip: Mapping[str, Any]
    real_clip: Mapping[str, np.ndarray]
    per_image: Sequence[Mapping[str, Any]]  # file, prompt, fallback of every sample, in order
    sample_images: Sequence[Mapping[str, Any]]  # the manifest's images, in row order
    real_images: Sequence[Mapping[str, Any]]  # the real manifest's images of the `real` rows
    all_real_images: Sequence[Mapping[str, Any]]  # every real image, in manifest order
    settings: Mapping[str, Any]  # `analysis_settings(config)`
    # every extractor's arrays by extractor key (`ckpt_eval.features.extractors`), for the
    # samples and the real set, and its model status ({available, reason, model, ...}); an
    # extractor that is off or whose model could not be loaded has no arrays, only a status
    features: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    real_features: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    status: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # processes the job may fork for loops of independent rows (`ckpt_eval.forked`: the FID
    # replicates); the numbers are the same bits for any number
    processes: int = 1

    def missing(
        self, extractor: str, label: str, arrays: tuple[str, ...], real: bool = False
    ) -> str | None:
        """Why a metric on `extractor`'s `arrays` (and the real set's first one, with `real`)
        cannot be computed: None when it can, OFF when the extractor is not enabled (nothing
        to say), else the reason the report gives, naming the features by `label`."""
        status = self.status.get(extractor)
        if status is None and extractor not in self.features:
            return OFF
        if status is not None and not status.get("available", True):
            return str(status.get("reason") or "its model could not be loaded").rstrip(". ")
        absent = [a for a in arrays if not self.has(extractor, a)]
        if absent:
            return f"the checkpoint's {label} feature file has no {', '.join(absent)}"
        if real and not self.has(extractor, arrays[0], real=True):
            return f"no {label} features of the real set"
        if real and len(self.real_features[extractor][arrays[0]]) < 2:
            return f"fewer than 2 real images have {label} features"
        if self.n == 0:
            return "the checkpoint has no images"
        return None

    def has(self, extractor: str, array: str, real: bool = False) -> bool:
        """Whether the samples' (or the real set's) `array` of `extractor` was computed."""
        arrays = (self.real_features if real else self.features).get(extractor) or {}
        return array in arrays

    @property
    def n(self) -> int:
        return len(self.fake)

    @property
    def seed(self) -> int:
        return int(self.settings["seed"])


@dataclass
class Outcome:
    """What one metric adds to a checkpoint's result: row fields, per-image values, notices."""

    fields: dict[str, Any] = field(default_factory=dict)
    per_image: dict[str, list[float | None]] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)


@dataclass(frozen=True)
class Measure:
    """One metric module's declaration."""

    key: str
    order: int  # position in tables, CSV, charts and the methodology
    quantities: tuple[Quantity, ...]
    compute: Callable[[CheckpointData], Outcome]
    # (data, counts of each resample) -> {quantity key: replicate values}; None = no interval
    replicates: Callable[[CheckpointData, np.ndarray], dict[str, np.ndarray]] | None = None
    # (validated config) -> (term, definition) entries of the methodology
    describe: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda config: []
    notices: Mapping[str, str] = field(default_factory=dict)  # code -> str.format template
    settings: tuple[str, ...] = ()  # config sections the metrics job passes it


@cache
def measures() -> tuple[Measure, ...]:
    """Every declared metric, in order: each module of this package with a MEASURE."""
    import ckpt_eval.metrics as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if isinstance(getattr(module, "MEASURE", None), Measure):
            found.append(module.MEASURE)
    keys = [m.key for m in found]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"two metric modules declare the same key: {sorted(keys)}")
    return tuple(sorted(found, key=lambda m: (m.order, m.key)))


def quantities() -> tuple[Quantity, ...]:
    """Every quantity of every metric, in registry order."""
    return tuple(q for m in measures() for q in m.quantities)


def quantity(key: str) -> Quantity:
    for q in quantities():
        if q.key == key:
            return q
    raise KeyError(f"no metric {key!r}; known: {', '.join(q.key for q in quantities())}")


def anchor() -> Quantity:
    """The quantity every ranked checkpoint has (FID): rows without it are unranked."""
    return next(q for q in quantities() if q.anchor)


def notice_templates() -> dict[str, str]:
    return {code: text for m in measures() for code, text in m.notices.items()}


def settings_keys() -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for m in measures() for k in m.settings))


def mean_replicates(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of per-image values in each weighted resample: the replicates of any mean."""
    c = np.asarray(counts, np.float64)
    return c @ np.asarray(values, np.float64) / c.sum(axis=1)
