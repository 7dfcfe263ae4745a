"""`python -m ckpt_eval watch --configfile my.yaml`: evaluate checkpoints while the trainer saves
them.

Every `interval` seconds the watch reads the trainer's output the way the workflow does (the
configured layout's reader: each checkpoint's sample images, or with `generate:` its LoRA
file) and fingerprints each checkpoint's files (path, size, mtime). A checkpoint is complete
when its fingerprint did not change between two looks and its newest file is at least `settle`
seconds old: a trainer still writing a checkpoint's images (or a half-written PNG) is never
read. When a checkpoint is complete and new, or changed since it was evaluated, the watch runs
Snakemake as a subprocess with the user's config plus `samples.checkpoints` set to the complete
checkpoints (results/<run>/watch/checkpoints.yaml), so that Snakemake plans only those and,
being incremental, runs only the new checkpoint's jobs, the report and the exports. It then
prints one line per newly evaluated checkpoint (`prose.watch_line`: its metrics and the current
recommendation).

Ctrl-C (SIGINT, or SIGTERM) stops the watch: while Snakemake runs, it gets one SIGINT and is
waited for (it stops its jobs, removes their incomplete outputs and its lock); only if it does
not end in time is it terminated, and then its lock is released with `--unlock`. Every result
file is written atomically (temp name, then rename), so none is left half-written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ckpt_eval.config import validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts import options_from_config, read_layout
from ckpt_eval.inputs.layouts.base import checkpoint_order
from ckpt_eval.inputs.steps import split_candidate
from ckpt_eval.jsonio import read_json

# a checkpoint's files as the watch compares them: (path, size, mtime in ns)
Fingerprint = frozenset[tuple[str, int, int]]

# Snakemake gets this long to stop after SIGINT, then this long after SIGTERM
GRACE_SECONDS = 120.0
TERMINATE_SECONDS = 30.0


@dataclass(frozen=True)
class WatchSettings:
    configfile: Path
    interval: float = 10.0
    settle: float = 60.0
    cores: str = "all"
    snakefile: Path = Path(__file__).resolve().parent.parent / "Snakefile"
    workdir: Path = Path(".")
    snakemake_args: Sequence[str] = ()  # after `--` on the command line


def checkpoint_files(config: Mapping[str, Any]) -> dict[str, list[Path]]:
    """Each checkpoint's files as the workflow will read them: its sample images (the layout's
    reader), or with `generate:` its LoRA (a file, or every file of a checkpoint folder).
    Nothing yet (no samples.root, no image) is an empty dict, not an error."""
    root = Path(config["samples"]["root"])
    if not root.is_dir():
        return {}
    layout = config["samples"]["layout"]
    if config.get("generate"):
        from ckpt_eval.generate.plan import folder_loras

        if layout == "folders":
            loras = folder_loras(root)
        else:
            loras = dict(read_layout(layout, options_from_config(config)).checkpoint_files)
        return {
            name: sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for name, path in loras.items()
        }
    found = read_layout(layout, options_from_config(config))
    return {name: [s.path for s in group] for name, group in found.by_checkpoint().items()}


def fingerprint(paths: Iterable[Path]) -> tuple[Fingerprint, float]:
    """The files' fingerprint and the newest mtime (seconds); a file gone since it was listed
    gives size -1, so the checkpoint is not complete yet."""
    entries, newest = set(), 0.0
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            entries.add((str(path), -1, 0))
            newest = float("inf")
            continue
        entries.add((str(path), stat.st_size, stat.st_mtime_ns))
        newest = max(newest, stat.st_mtime)
    return frozenset(entries), newest


@dataclass
class Settling:
    """Which checkpoints are complete: unchanged since the previous look, newest file `settle`
    seconds old or more."""

    settle: float
    previous: dict[str, Fingerprint] = field(default_factory=dict)

    def look(self, files: Mapping[str, list[Path]], now: float) -> dict[str, Fingerprint]:
        """The complete checkpoints now (name -> fingerprint), in training order."""
        complete, current = {}, {}
        for name, paths in files.items():
            print_, newest = fingerprint(paths)
            current[name] = print_
            if self.previous.get(name) == print_ and now - newest >= self.settle:
                complete[name] = print_
        self.previous = current
        return dict(sorted(complete.items(), key=lambda kv: checkpoint_order(kv[0])))


def to_evaluate(
    complete: Mapping[str, Fingerprint], evaluated: Mapping[str, Fingerprint]
) -> list[str]:
    """The complete checkpoints that are new or changed since they were evaluated."""
    return [name for name, print_ in complete.items() if evaluated.get(name) != print_]


def snakemake_command(settings: WatchSettings, selection: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(settings.snakefile),
        "--directory",
        str(settings.workdir),
        "--configfile",
        str(settings.configfile),
        str(selection),
        "--cores",
        settings.cores,
        "--rerun-incomplete",
        *settings.snakemake_args,
        *extra,
    ]


def write_selection(path: Path, samples: Mapping[str, Any], names: list[str]) -> None:
    """The config the watch adds to the user's: their `samples` section with
    `checkpoints` = the complete ones (written whole, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = "# written by `python -m ckpt_eval watch`: the complete checkpoints\n"
    tmp.write_text(text + yaml.safe_dump({"samples": {**samples, "checkpoints": names}}))
    tmp.replace(path)


def locks(workdir: Path) -> list[Path]:
    folder = workdir / ".snakemake" / "locks"
    return sorted(folder.iterdir()) if folder.is_dir() else []


class Watcher:
    """The loop of `watch`; `stop` ends it (set by the SIGINT handler of `main`)."""

    def __init__(
        self,
        settings: WatchSettings,
        stop: threading.Event,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.say = say
        raw = yaml.safe_load(Path(settings.configfile).read_text(encoding="utf-8")) or {}
        self.samples = dict(raw.get("samples") or {})
        # the defaults filled in, every key checked: a bad config stops before the first look
        self.config = validate_config(raw)
        self.out = Path(settings.workdir) / "results" / self.config["run"]
        self.only = self.config["samples"]["checkpoints"]  # the user's own choice, if any
        self.evaluated: dict[str, Fingerprint] = {}
        self.failed: dict[str, Fingerprint] | None = None
        self.runs = 0
        self._said: str | None = None

    def look(self, settling: Settling) -> dict[str, Fingerprint]:
        cwd = os.getcwd()
        os.chdir(self.settings.workdir)  # the config's paths are relative to the workdir
        try:
            files = checkpoint_files(self.config)
        except CkptEvalError as exc:  # e.g. a trainer folder caught half-way: say it once
            self.say_once(f"ckpt-eval watch: {exc}")
            files = {}
        finally:
            os.chdir(cwd)
        if self.only is not None:
            files = {n: p for n, p in files.items() if n in self.only}
        return settling.look(files, time.time())

    def say_once(self, text: str) -> None:
        if text != self._said:
            self.say(text)
            self._said = text

    def run(self) -> int:
        """Watch until `stop`; 0 when stopped while waiting, 130 when a run was interrupted."""
        root = self.config["samples"]["root"]
        self.say(
            f"ckpt-eval watch: watching {root} every {self.settings.interval:g} s; a checkpoint "
            f"is evaluated once its files have not changed for {self.settings.settle:g} s. "
            "Ctrl-C stops."
        )
        settling = Settling(self.settings.settle)
        while not self.stop.is_set():
            complete = self.look(settling)
            new = to_evaluate(complete, self.evaluated)
            gone = set(self.evaluated) - set(settling.previous)
            if (new or gone) and complete and complete != self.failed:
                code = self.evaluate(complete, new)
                if code is None:
                    return 130
            self.stop.wait(self.settings.interval)
        self.say(f"ckpt-eval watch: stopped; {len(self.evaluated)} checkpoint(s) evaluated.")
        return 0

    def evaluate(self, complete: dict[str, Fingerprint], new: list[str]) -> int | None:
        """One Snakemake run over the complete checkpoints; None if it was interrupted."""
        self.runs += 1
        selection = self.out / "watch" / "checkpoints.yaml"
        log = self.out / "watch" / f"run-{self.runs:03d}.log"
        write_selection(selection, self.samples, list(complete))
        self.say(f"ckpt-eval watch: evaluating {', '.join(new)} (log: {log})")
        code = self.snakemake(snakemake_command(self.settings, selection), log)
        if code is None:
            self.say(
                "ckpt-eval watch: stopped during a run; its unfinished jobs were removed. "
                "Run the watch (or snakemake) again to finish it."
            )
            return None
        if code != 0:
            self.failed = complete
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
            self.say(
                f"ckpt-eval watch: the run failed (exit {code}); waiting for the files to "
                f"change. End of {log}:\n{tail}"
            )
            return code
        self.failed = None
        self.evaluated = dict(complete)
        self.report(new)
        return 0

    def report(self, new: list[str]) -> None:
        from ckpt_eval.report.prose import watch_line

        result = read_json(self.out / "consolidated_results.json")
        for row in result["checkpoints"]:  # with a strength sweep: each scale's candidate
            if split_candidate(row["name"])[0] in new:
                self.say(watch_line(row, result))

    def snakemake(self, command: list[str], log: Path) -> int | None:
        """Run Snakemake in its own session (a Ctrl-C in the terminal reaches only the watch,
        which passes one SIGINT on), its output to `log`; its exit code, or None if stopped."""
        with open(log, "w", encoding="utf-8") as handle:
            process = subprocess.Popen(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            while process.poll() is None:
                if self.stop.wait(0.2):
                    return self.halt(process, command)
            return process.returncode

    def halt(self, process: subprocess.Popen, command: list[str]) -> None:
        """Stop a running Snakemake as Ctrl-C would, and make sure no lock is left."""
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=TERMINATE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if locks(Path(self.settings.workdir)):  # only after our own Snakemake had to be killed
            subprocess.run(
                [*command, "--unlock"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        return None


def watch(settings: WatchSettings) -> int:
    """The CLI's entry: SIGINT and SIGTERM stop the loop cleanly instead of raising."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return Watcher(settings, stop, say=lambda text: print(text, flush=True)).run()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
