"""Keep the README's generated sections in step with the code they describe.

Two sections: the table schema reference (from `linkage.schemas` and the cohort
declarations, between `<!-- schema:start -->` and `<!-- schema:end -->`) and the
configuration reference (from the pydantic models in `linkage.config`, between
`<!-- config:start -->` and `<!-- config:end -->`).
`python -m linkage.docs --write README.md` regenerates both; `--check` exits 1 when either is
stale (a test runs it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from linkage.config import PROJECT_ROOT
from linkage.schemas import TableContract, markdown_reference
from linkage.sources import all_tables

START_MARKER = "<!-- schema:start -->"
END_MARKER = "<!-- schema:end -->"
CONFIG_START_MARKER = "<!-- config:start -->"
CONFIG_END_MARKER = "<!-- config:end -->"
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
    summary = replace(
        summary_contract(loaded[0]),
        name="cohort_<name>_summary",
        description="Every cohort's disclosure-controlled counts by breakdown (one table per cohort).",
    )
    return (*[person_contract(declaration) for declaration in loaded], summary)


def schema_reference(declarations: Path = DEFAULT_DECLARATIONS) -> str:
    """The generated markdown: every contract in linkage.schemas, then the declared cohorts' tables."""
    return markdown_reference((*all_tables(), *cohort_contracts(declarations))).strip("\n")


def config_reference() -> str:
    """Every configuration key with its type, default and meaning, from the pydantic models."""
    from linkage.config import AppConfig

    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [
        f"| `{key}` | {kind} | {default} | {meaning} |"
        for key, kind, default, meaning in _config_rows(AppConfig)
    ]
    return "\n".join(rows)


def _config_rows(model: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _config_rows(annotation, f"{prefix}{name}.")
            continue
        kind = _type_name(annotation)
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "required"
        else:
            value = field.get_default(call_default_factory=True)
            default = f"`{value}`" if value not in (None, {}, [], ()) else "none"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append((f"{prefix}{name}", kind.replace("|", "or"), default.replace("|", "\\|"), meaning))
    return rows


def _type_name(annotation: object) -> str:
    from typing import Literal, get_args, get_origin

    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    name = getattr(annotation, "__name__", None)
    if name and not get_args(annotation):
        return name
    from linkage.config.models import Source
    from linkage.sources import names

    # A source name is checked against the registry: shown as the Literal of the registered names.
    text = str(annotation).replace(str(Source), f"Literal[{', '.join(repr(name) for name in names())}]")
    return (
        text.replace("typing.", "")
        .replace("datetime.", "")
        .replace("linkage.config.models.", "")
        .replace("linkage.config.", "")
    )


def _marker_positions(
    readme_text: str, start_marker: str = START_MARKER, end_marker: str = END_MARKER
) -> tuple[int, int]:
    start = readme_text.find(start_marker)
    end = readme_text.find(end_marker)
    if start < 0 or end < start:
        raise MarkersMissing(f"expected '{start_marker}' followed by '{end_marker}'")
    return start + len(start_marker), end


def schema_section(readme_text: str, markers: tuple[str, str] = (START_MARKER, END_MARKER)) -> str:
    """The text now between the markers, without the blank lines that frame it."""
    start, end = _marker_positions(readme_text, *markers)
    return readme_text[start:end].strip("\n")


def with_schema_reference(
    readme_text: str, reference: str, markers: tuple[str, str] = (START_MARKER, END_MARKER)
) -> str:
    """README text with the section between the markers replaced by `reference`; all else unchanged."""
    start, end = _marker_positions(readme_text, *markers)
    return f"{readme_text[:start]}\n\n{reference.strip(chr(10))}\n\n{readme_text[end:]}"


def generated_sections() -> dict[tuple[str, str], str]:
    """Marker pair -> the text that belongs between them."""
    return {
        (START_MARKER, END_MARKER): schema_reference(),
        (CONFIG_START_MARKER, CONFIG_END_MARKER): config_reference(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkage.docs", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--write",
        metavar="README",
        nargs="?",
        const=str(DEFAULT_README),
        help="Regenerate the schema section of this file (default README.md).",
    )
    action.add_argument(
        "--check",
        metavar="README",
        nargs="?",
        const=str(DEFAULT_README),
        help="Exit 1 when the schema section of this file is stale.",
    )
    args = parser.parse_args(argv)
    path = Path(args.write or args.check)
    try:
        text = path.read_text(encoding="utf-8")
        sections = generated_sections()
        stale = [
            markers for markers, reference in sections.items() if schema_section(text, markers) != reference
        ]
    except (OSError, MarkersMissing) as error:
        print(f"linkage.docs: {path}: {error}", file=sys.stderr)
        return 2
    if args.check:
        if stale:
            names = ", ".join(markers[0] for markers in stale)
            print(
                f"linkage.docs: {path}: the generated reference is stale ({names}); run `make docs`",
                file=sys.stderr,
            )
            return 1
        return 0
    if stale:
        for markers in stale:
            text = with_schema_reference(text, sections[markers], markers)
        path.write_text(text, encoding="utf-8")
        print(f"linkage.docs: {path}: generated references regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
