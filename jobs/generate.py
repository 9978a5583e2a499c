"""Write a synthetic multi-source extract (the eight spec files) and its truth files.

Needs no Spark: `python -m jobs.generate [--config conf/local.yaml] [--set synthetic.people=100000] [--out DIR]`
writes to --out or paths.raw and prints each file's row count and the wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from linkage.harness import CommandContext, run_command
from linkage.synthetic import generate_raw_extract

DESCRIPTION = "Generate a synthetic extract of the four sources, with truth.csv and truth_conditions.csv."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=None, help="Folder to write to (default: paths.raw of the configuration)."
    )


def generate(ctx: CommandContext) -> None:
    started = time.perf_counter()
    out_dir = Path(ctx.args.out).resolve() if ctx.args.out else Path(ctx.config.paths.raw)
    ctx.say(f"{ctx.config.synthetic.people} people, seed {ctx.config.synthetic.seed} -> {out_dir}")
    for name, rows in generate_raw_extract(ctx.config, out_dir).items():
        ctx.say(f"{name + '.csv':<28} {rows:>10,} rows")
    ctx.say(f"done in {time.perf_counter() - started:.1f} s")


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_command("generate", DESCRIPTION, generate, argv, environ, add_arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
