"""Serve the clerical review app on 127.0.0.1: work queues, pair view with the model's evidence, decisions."""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.review.server import review_command


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return review_command(argv, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
