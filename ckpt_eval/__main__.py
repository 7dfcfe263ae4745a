"""`python -m ckpt_eval init --from <trainer output> --real <real images>`: write a config.

`python -m ckpt_eval config-reference [--output docs/config.md]`: the config reference.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ckpt_eval.atomic import write_text
from ckpt_eval.config import load_schema
from ckpt_eval.config_reference import render_reference
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.init_config import InitRequest, run_init
from ckpt_eval.inputs.layouts import LAYOUTS


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
    return top


def config_reference(output: Path | None) -> int:
    text = render_reference(load_schema())
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
        print(f"wrote {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "config-reference":
        return config_reference(args.output)
    request = InitRequest(
        source=args.source,
        real=args.real,
        output=args.output,
        trainer=args.trainer,
        name=args.name,
        prompts=args.prompts,
        prompt_file=args.prompt_file,
        pattern=args.pattern,
        trigger_word=args.trigger_word,
        training_run=args.training_run,
        base_model=args.base_model,
        force=args.force,
    )
    try:
        lines = run_init(request)
    except CkptEvalError as exc:
        print(f"ckpt-eval init: {exc}", file=sys.stderr)
        if os.environ.get("CKPT_EVAL_DEBUG"):
            raise
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
