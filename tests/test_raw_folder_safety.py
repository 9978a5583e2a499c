"""A raw folder is never written to or emptied: synthetic data only into a folder with no extract, in local mode."""

from __future__ import annotations

import io
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import pytest
from conftest import snapshot

from jobs import generate as generate_job
from jobs import pipeline as pipeline_job
from linkage.errors import InputError
from linkage.pipeline import check_extract_or_generate
from linkage.synthetic import FILES, SYNTHETIC_MARKER

EXTRACT = [name for pair in FILES.values() for name in pair]


class QuietContext:
    """What check_extract_or_generate needs of a job context: stages and messages."""

    def __init__(self):
        self.said: list[str] = []

    @contextmanager
    def stage(self, name):
        yield

    def say(self, message):
        self.said.append(message)


def test_a_partial_extract_stops_the_pipeline_naming_the_missing_files_and_changes_nothing(
    test_overrides, tmp_path
):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "gp_patients.csv").write_text("gp_patient_id\n1\n", encoding="utf-8")
    (raw / "hospital_patients.parquet").write_bytes(b"not really parquet")
    before = snapshot(raw)
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = pipeline_job.main([arg for item in test_overrides for arg in ("--set", item)], {})
    assert code == 2
    message = err.getvalue()
    assert "incomplete extract" in message
    for name in EXTRACT:
        assert (f"{name}.csv" in message) == (name not in ("gp_patients", "hospital_patients")), name
    assert snapshot(raw) == before


def test_expected_names_come_from_ingest_sources(make_config, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    config = make_config("ingest.sources.gp.people_file=practice_patients")
    for name in EXTRACT:
        (raw / f"{'practice_patients' if name == 'gp_patients' else name}.csv").write_text(
            "x\n", encoding="utf-8"
        )
    before = snapshot(raw)
    check_extract_or_generate(
        QuietContext(), config, raw
    )  # complete under the configured names: nothing to do
    assert snapshot(raw) == before
    (raw / "practice_patients.csv").rename(raw / "gp_patients.csv")
    with pytest.raises(InputError, match="missing practice_patients.csv"):
        check_extract_or_generate(QuietContext(), config, raw)


def test_outside_local_mode_an_empty_folder_is_an_error_not_a_synthetic_extract(make_config, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(InputError, match="only when environment is local"):
        check_extract_or_generate(QuietContext(), make_config("environment=cluster"), raw)
    assert list(raw.iterdir()) == []


def test_a_folder_with_files_the_generator_did_not_write_is_never_generated_into(make_config, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "truth.csv").write_text("someone else's truth\n", encoding="utf-8")
    before = snapshot(raw)
    with pytest.raises(InputError, match="would not match ingest.sources or would replace truth.csv"):
        check_extract_or_generate(QuietContext(), make_config(), raw)
    (raw / "gp_patients.csv").write_text("a real extract\n", encoding="utf-8")
    before = snapshot(raw)
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        assert generate_job.main(["--set", "synthetic.people=60", "--out", str(raw)], {}) == 2
    assert "did not write" in err.getvalue()
    assert snapshot(raw) == before


def test_in_local_mode_an_empty_folder_gets_a_marked_synthetic_extract_and_a_second_run_keeps_it(
    make_config, tmp_path
):
    raw = tmp_path / "raw"
    raw.mkdir()
    context = QuietContext()
    check_extract_or_generate(context, make_config("synthetic.people=60"), raw)
    assert any("generated a synthetic one (60 people" in message for message in context.said)
    assert (raw / SYNTHETIC_MARKER).exists() and all((raw / f"{name}.csv").exists() for name in EXTRACT)
    before = snapshot(raw)
    again = QuietContext()
    check_extract_or_generate(
        again, make_config("synthetic.people=60"), raw
    )  # complete now: read, not regenerated
    assert again.said == [] and snapshot(raw) == before
