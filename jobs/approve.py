"""Approve a registered Splink model version: `python -m jobs.approve --version N` (no Spark needed)."""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.harness import run_command
from linkage.link.registry import APPROVE_DESCRIPTION, add_approve_arguments, approve


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_command("approve", APPROVE_DESCRIPTION, approve, argv, environ, add_approve_arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
