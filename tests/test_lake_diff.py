"""`python -m linkage.lake_diff`: two lakes compared table by table, run ids and timestamps left out, no values shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from deltalake import write_deltalake

from linkage import lake_diff


def person_table(person_ids: list[str], run_id: str) -> pa.Table:
    return pa.table(
        {
            "person_id": person_ids,
            "year_of_birth": [1980 + i for i in range(len(person_ids))],
            "run_id": [run_id] * len(person_ids),
            "written_at": pa.array([datetime.now(UTC)] * len(person_ids), pa.timestamp("us", tz="UTC")),
        }
    )


def test_lakes_differing_only_in_run_ids_and_times_are_identical_and_a_changed_row_is_not(tmp_path, capsys):
    before, after, changed = tmp_path / "before", tmp_path / "after", tmp_path / "changed"
    write_deltalake(str(before / "pseudonymised" / "person"), person_table(["p1", "p2", "p3"], "run-a"))
    # Same rows in another order, written by another run at another time.
    write_deltalake(str(after / "pseudonymised" / "person"), person_table(["p1", "p2", "p3"], "run-b")[::-1])
    write_deltalake(str(changed / "pseudonymised" / "person"), person_table(["p1", "p2", "p9"], "run-c"))

    assert lake_diff.main([str(before), str(after)]) == 0
    assert "identical (without run_id, written_at)" in capsys.readouterr().out

    assert lake_diff.main([str(before), str(changed)]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT: 1 rows of A not in B" in out
    assert "p3" not in out and "p9" not in out  # counts only, never values


def test_a_table_on_one_side_only_is_a_difference(tmp_path):
    write_deltalake(str(tmp_path / "a" / "cohorts" / "cohort_asthma"), person_table(["p1"], "run-a"))
    (tmp_path / "b").mkdir()
    assert lake_diff.compare(tmp_path / "a", tmp_path / "b") == [
        ("cohorts/cohort_asthma", None, None, "only in A")
    ]
    assert lake_diff.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def test_a_line_that_is_not_valid_utf8_is_compared_as_bytes(tmp_path):
    import pyarrow as pa

    def quarantine(lines: list[bytes]) -> pa.Table:
        raw = pa.array(lines, pa.binary()).view(pa.string())  # as Spark stores a line it could not decode
        return pa.table({"raw_line": raw, "run_id": pa.array(["r"] * len(lines))})

    for side, lines in (
        ("a", [b"ok", b"\xff\xfe"]),
        ("b", [b"\xff\xfe", b"ok"]),
        ("c", [b"ok", b"\xff\xfd"]),
    ):
        write_deltalake(str(tmp_path / side / "restricted" / "quarantine"), quarantine(lines))
    assert lake_diff.compare(tmp_path / "a", tmp_path / "b")[0][3].startswith("identical")
    assert lake_diff.compare(tmp_path / "a", tmp_path / "c")[0][3].startswith("DIFFERENT")
