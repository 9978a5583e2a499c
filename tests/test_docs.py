"""The README's schema reference, the contracts and the comments stored in Delta say the same thing."""

from __future__ import annotations

import pytest

from linkage import docs, lake
from linkage.sources import all_tables, pseudonymised_tables

README_TEMPLATE = (
    "# Title\n\nIntro.\n\n<!-- schema:start -->\n{section}\n<!-- schema:end -->\n\n## Config\n\n"
    "<!-- config:start -->\n{config}\n<!-- config:end -->\n\n## After\n"
)


def test_readme_schema_reference_equals_the_generated_text():
    readme = docs.DEFAULT_README.read_text(encoding="utf-8")
    assert docs.schema_section(readme) == docs.schema_reference(), "README is stale: run `make docs`"
    assert docs.main(["--check", str(docs.DEFAULT_README)]) == 0


def test_reference_covers_every_contract_and_each_declared_cohort():
    reference = docs.schema_reference()
    expected = [f"{c.zone}/{c.name}" for c in all_tables()]
    expected += [f"cohorts/cohort_{path.stem}" for path in docs.DEFAULT_DECLARATIONS.glob("*.yaml")]
    assert expected and all(f"#### `{name}`" in reference for name in expected)
    assert "#### `cohorts/cohort_<name>_summary`" in reference


def test_write_replaces_only_the_marked_section_and_check_then_passes(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(
        README_TEMPLATE.format(section="| old | table |", config="| old | key |"), encoding="utf-8"
    )
    assert docs.main(["--check", str(readme)]) == 1
    assert "stale" in capsys.readouterr().err
    assert docs.main(["--write", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text == README_TEMPLATE.format(
        section=f"\n{docs.schema_reference()}\n", config=f"\n{docs.config_reference()}\n"
    )
    assert "| `linkage.thresholds.upper` | float | `0.995` |" in text
    assert "#### `pseudonymised/person`" in text and "| `person_id` | string |" in text
    assert docs.main(["--check", str(readme)]) == 0
    assert (
        docs.main(["--write", str(readme)]) == 0 and readme.read_text(encoding="utf-8") == text
    )  # idempotent


def test_a_readme_without_markers_is_an_input_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# No markers here\n", encoding="utf-8")
    assert docs.main(["--check", str(readme)]) == 2
    with pytest.raises(docs.MarkersMissing):
        docs.with_schema_reference(readme.read_text(), "x")


@pytest.mark.slow
def test_stored_delta_comments_of_the_pseudonymised_tables_equal_the_contracts(spark, released):
    lake_root = released.config.paths.lake
    for contract in pseudonymised_tables():
        schema = lake.read_table(spark, lake_root, contract).schema
        stored = [
            (field.name, field.simpleString().split(":", 1)[1], field.metadata.get("comment"))
            for field in schema
        ]
        assert stored == [(c.name, c.type, c.comment) for c in contract.columns], contract.name
        detail = spark.sql(f"DESCRIBE DETAIL delta.`{lake.table_path(lake_root, contract)}`").first()
        assert detail.description == contract.description
