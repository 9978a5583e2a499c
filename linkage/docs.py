"""Keep the README's table schema reference generated from `linkage.schemas`.

`python -m linkage.docs --write README.md` replaces the text between the schema markers;
`python -m linkage.docs --check README.md` exits 1 when that text is stale (CI and a test run it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from linkage.config import PROJECT_ROOT
from linkage.schemas import ALL_TABLES, TableContract, markdown_reference

START_MARKER = "<!-- schema:start -->"
END_MARKER = "<!-- schema:end -->"
DEFAULT_README = PROJECT_ROOT / "README.md"
DEFAULT_DECLARATIONS = PROJECT_ROOT / "conf" / "cohorts"


class MarkersMissing(ValueError):
    """The README lacks the start/end markers (or has them out of order)."""


def cohort_contracts(declarations: Path = DEFAULT_DECLARATIONS) -> tuple[TableContract, ...]:
    """Each declared cohort's person-level table, then the summary shape every cohort shares."""
    from dataclasses import replace

    from linkage.cohorts.contracts import person_contract, summary_contract
    from linkage.cohorts.declaration import declaration_files, load_declaration

    loaded = [load_declaration(path) for path in declaration_files(declarations).values()]
    if not loaded:
        return ()
    # Summaries differ only in the cohort's name: document the shape once.
    summary = replace(summary_contract(loaded[0]), name="cohort_<name>_summary",
                      description="Every cohort's disclosure-controlled counts by breakdown (one table per cohort).")
    return (*[person_contract(declaration) for declaration in loaded], summary)


def schema_reference(declarations: Path = DEFAULT_DECLARATIONS) -> str:
    """The generated markdown: every contract in linkage.schemas, then the declared cohorts' tables."""
    return markdown_reference((*ALL_TABLES, *cohort_contracts(declarations))).strip("\n")


def _marker_positions(readme_text: str) -> tuple[int, int]:
    start = readme_text.find(START_MARKER)
    end = readme_text.find(END_MARKER)
    if start < 0 or end < start:
        raise MarkersMissing(f"expected '{START_MARKER}' followed by '{END_MARKER}'")
    return start + len(START_MARKER), end


def schema_section(readme_text: str) -> str:
    """The text now between the markers, without the blank lines that frame it."""
    start, end = _marker_positions(readme_text)
    return readme_text[start:end].strip("\n")


def with_schema_reference(readme_text: str, reference: str) -> str:
    """README text with the section between the markers replaced by `reference`; all else unchanged."""
    start, end = _marker_positions(readme_text)
    return f"{readme_text[:start]}\n\n{reference.strip(chr(10))}\n\n{readme_text[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkage.docs", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="README", nargs="?", const=str(DEFAULT_README),
                        help="Regenerate the schema section of this file (default README.md).")
    action.add_argument("--check", metavar="README", nargs="?", const=str(DEFAULT_README),
                        help="Exit 1 when the schema section of this file is stale.")
    args = parser.parse_args(argv)
    path = Path(args.write or args.check)
    try:
        text = path.read_text(encoding="utf-8")
        current = schema_section(text)
    except (OSError, MarkersMissing) as error:
        print(f"linkage.docs: {path}: {error}", file=sys.stderr)
        return 2
    reference = schema_reference()
    if args.check:
        if current != reference:
            print(f"linkage.docs: {path}: the schema reference is stale; run `make docs`", file=sys.stderr)
            return 1
        return 0
    if current != reference:
        path.write_text(with_schema_reference(text, reference), encoding="utf-8")
        print(f"linkage.docs: {path}: schema reference regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
