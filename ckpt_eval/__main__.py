"""`python -m ckpt_eval init --from <trainer output> --real <real images>`: write a config.

`python -m ckpt_eval config-reference [--output docs/config.md]`: the config reference.

`python -m ckpt_eval watch --configfile my.yaml [--interval S]`: evaluate checkpoints as the
trainer saves them (docs/watch.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TypeVar

from ckpt_eval.atomic import write_text
from ckpt_eval.config import load_schema
from ckpt_eval.config_reference import render_reference
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.init_config import InitRequest, run_init
from ckpt_eval.inputs.layouts import LAYOUTS

T = TypeVar("T")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m ckpt_eval", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    init = commands.add_parser(
        "init",
        help="read a trainer's output folder and write a config for it",
        description="Detect the trainer (or take --trainer), print the checkpoints, images and "
        "prompts found, and write a commented config.",
    )
    init.add_argument("--from", dest="source", type=Path, required=True, help="trainer output")
    init.add_argument("--real", type=Path, required=True, help="folder of real training images")
    init.add_argument("--trainer", choices=list(LAYOUTS), help="skip detection: this layout")
    init.add_argument("--output", "-o", type=Path, default=Path("config.yaml"), help="config")
    init.add_argument("--name", help="the run's name (results/<name>/); default from the trainer")
    init.add_argument("--prompt-file", type=Path, help="the trainer's prompt file, if elsewhere")
    init.add_argument("--prompts", type=Path, help="CSV file,prompt (needed by --trainer folders)")
    init.add_argument("--pattern", help="regex layout: pattern with (?P<step>...) and so on")
    init.add_argument("--trigger-word", help="ai-toolkit: the word that replaces [trigger]")
    init.add_argument("--training-run", help="which run, when the folder holds several")
    init.add_argument(
        "--base-model",
        help="render the samples (a generate: section): the base model's hub id or folder",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    reference = commands.add_parser(
        "config-reference",
        help="write the config reference (Markdown) from the schema's descriptions",
        description="Render every config key of ckpt_eval/schemas/config.schema.yaml with its "
        "type, default and description, as docs/config.md holds it.",
    )
    reference.add_argument(
        "--output", "-o", type=Path, help="file to write (e.g. docs/config.md); default stdout"
    )
    watch = commands.add_parser(
        "watch",
        help="evaluate checkpoints while the trainer saves them (Ctrl-C stops)",
        description="Wait for new or changed checkpoints in samples.root, wait until each is "
        "complete (its files stopped changing), run the workflow on the complete ones and print "
        "a line per evaluated checkpoint with its metrics and the current recommendation. "
        "Arguments after `--` go to snakemake (e.g. -- --profile profiles/slurm).",
    )
    watch.add_argument("--configfile", type=Path, required=True, help="the run's config")
    watch.add_argument(
        "--interval", type=float, default=10.0, help="seconds between looks (default 10)"
    )
    watch.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="seconds a checkpoint's newest file must be old to count as complete (default 60)",
    )
    watch.add_argument("--cores", default="all", help="snakemake --cores (default all)")
    watch.add_argument(
        "--directory",
        "-d",
        dest="workdir",
        type=Path,
        default=Path("."),
        help="working directory (default .)",
    )
    watch.add_argument("--snakefile", type=Path, help="default: this checkout's Snakefile")
    watch.add_argument("snakemake_args", nargs="*", help="after --: more snakemake arguments")
    return top


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The dataclass `cls` of a command's arguments: each field from the argument of its name,
    its default where the argument was not given."""
    given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in given.items() if value is not None})


def run_watch(args: argparse.Namespace) -> int:
    from ckpt_eval.watch import WatchSettings, watch

    settings = from_args(WatchSettings, args)
    if not settings.snakefile.is_file():
        raise CkptEvalError(
            "The workflow's Snakefile was not found beside the ckpt_eval package.",
            path=settings.snakefile,
            fix="run the watch from a checkout of ckpt-eval, or pass --snakefile <checkout>/"
            "Snakefile.",
        )
    if args.interval <= 0 or args.settle < 0:
        raise CkptEvalError("--interval must be above 0 and --settle not below 0.")
    return watch(settings)


def config_reference(output: Path | None) -> int:
    text = render_reference(load_schema())
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
        print(f"wrote {output}")
    return 0


def init(args: argparse.Namespace) -> int:
    request = from_args(InitRequest, args)
    print("\n".join(run_init(request)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "config-reference":
        return config_reference(args.output)
    command = {"init": init, "watch": run_watch}[args.command]
    try:
        return command(args)
    except CkptEvalError as exc:
        print(f"ckpt-eval {args.command}: {exc}", file=sys.stderr)
        if os.environ.get("CKPT_EVAL_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
