"""Run the benchmarks and write bench/RESULTS.md: `python bench/run.py [figure ...]`.

Figures measured so far: `frechet` (Fréchet distance against scipy's sqrtm). Each writes its own
section; RESULTS.md starts with the machine and the package versions the figures were taken on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import frechet  # noqa: E402

FIGURES = {"frechet": frechet}
PACKAGES = ("numpy", "scipy", "torch", "clean-fid")


def machine() -> str:
    lines = [
        "# Benchmark results",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        f"- Python {platform.python_version()}; "
        + ", ".join(f"{p} {version(p)}" for p in PACKAGES),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("figures", nargs="*", help=f"any of {', '.join(FIGURES)}; default all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.figures) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    sections = [machine()]
    for name in args.figures or FIGURES:
        module = FIGURES[name]
        rows = module.run(repeats=args.repeats)
        sections.append(module.markdown(rows, args.repeats))
        print(sections[-1])
    args.out.write_text("\n".join(sections), encoding="utf-8")


if __name__ == "__main__":
    main()
