"""Ingest the raw extracts: standardise people and activity, quarantine bad rows, reconcile counts."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.harness import run_job
from linkage.ingest import stage
from linkage.releases.cycle import locked


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job(
        "ingest",
        "Read the raw extracts, standardise identifiers, quarantine bad rows, write "
        "restricted/people_std, <source>_activity_std and quarantine.",
        locked(stage.run),
        argv,
        environ,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
