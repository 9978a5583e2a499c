"""Link restricted/people_std into persons with the approved Splink model: spine, registry, review queue, QA."""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.harness import run_job
from linkage.link import stage
from linkage.link.stage import add_link_arguments
from linkage.releases.cycle import locked


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job(
        "link", __doc__.splitlines()[0], locked(stage.run), argv, environ, add_arguments=add_link_arguments
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
