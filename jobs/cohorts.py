"""Build the topic cohorts declared in conf/cohorts/ in parallel, with disclosure-controlled summaries.

python -m jobs.cohorts [--config conf/local.yaml] [--set cohorts.only=[asthma]] [--sequential | --compare]
"""

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from linkage.cohorts import stage
from linkage.harness import run_job
from linkage.releases.cycle import released


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--sequential", action="store_true", help="Build one cohort at a time (to compare wall time)."
    )
    mode.add_argument(
        "--compare", action="store_true", help="Build sequentially, then in parallel; log both times."
    )


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job("cohorts", __doc__.splitlines()[0], released(stage.run), argv, environ, add_arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
