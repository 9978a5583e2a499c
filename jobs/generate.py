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

from linkage.cli import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, build_parser, first_line, redact
from linkage.config import load_config
from linkage.errors import LinkageError
from linkage.synthetic import generate_raw_extract

DESCRIPTION = "Generate a synthetic extract of the four sources, with truth.csv and truth_conditions.csv."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="Folder to write to (default: paths.raw of the configuration).")


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = build_parser("generate", DESCRIPTION, add_arguments)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:  # argparse already printed the usage error
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    started = time.perf_counter()
    try:
        config = load_config(args.config, overrides=args.set)
        out_dir = Path(args.out).resolve() if args.out else Path(config.paths.raw)
        print(f"[generate] {config.synthetic.people} people, seed {config.synthetic.seed} -> {out_dir}", flush=True)
        counts = generate_raw_extract(config, out_dir)
    except LinkageError as error:
        print(f"[generate] error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except Exception as error:  # noqa: BLE001 - the job boundary: report and map to exit 1
        print(f"[generate] failed: {type(error).__name__}: {redact(first_line(error))}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    for name, rows in counts.items():
        print(f"[generate] {name + '.csv':<28} {rows:>10,} rows", flush=True)
    print(f"[generate] done in {time.perf_counter() - started:.1f} s", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
