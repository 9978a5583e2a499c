"""Publish the pseudonymised zone: keyed person ids, generalised attributes, activity without identifiers."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.harness import run_job
from linkage.pseudonymise import stage
from linkage.releases.cycle import released


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job(
        "pseudonymise",
        "Write pseudonymised/person and the activity tables keyed by person_id, "
        "using the release key from $LINKAGE_PSEUDO_KEY or pseudonymise.key_file.",
        released(stage.run),
        argv,
        environ,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
