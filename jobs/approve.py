"""Approve a registered Splink model version: `python -m jobs.approve --version N` (no Spark needed)."""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.link.registry import approve_command


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return approve_command(argv, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
