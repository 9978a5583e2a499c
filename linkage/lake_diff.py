"""Compare two lakes table by table: `python -m linkage.lake_diff LAKE_A LAKE_B`.

For showing that a change of code leaves every output as it was: run the pipeline before and after
on the same extract with the same release key, then compare. Rows are compared as multisets with
the columns that differ between any two runs by construction left out (the run id, and timestamps:
when a run happened). Prints, per table, the rows on each side and whether they are identical;
never a value. Exit code 0 when every table is identical, 1 otherwise. No Spark.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from linkage.releases.manifest import read_arrow

ZONES = ("restricted", "pseudonymised", "cohorts")
RUN_COLUMNS = ("run_id",)  # one per run by construction


def delta_tables(lake: Path) -> list[str]:
    """`zone/table` of every Delta table under the lake's zones."""
    return sorted(
        f"{zone}/{folder.name}"
        for zone in ZONES
        if (lake / zone).is_dir()
        for folder in (lake / zone).iterdir()
        if (folder / "_delta_log").is_dir()
    )


def row_digests(path: Path) -> tuple[Counter[str], list[str]]:
    """Each row's digest over the compared columns, counted (row order is not part of a table), and the
    columns left out: run ids, and timestamps (when a run happened, not what it found)."""
    table = read_arrow(str(path))
    left_out = [
        field.name
        for field in table.schema
        if field.name in RUN_COLUMNS or str(field.type).startswith("timestamp")
    ]
    compared = table.drop_columns(left_out)
    # Compared as bytes: a quarantined line that is not valid UTF-8 (reason encoding_error) is kept as read, and
    # decoding it to text would fail.
    compared = compared.cast(
        pa.schema(
            pa.field(f.name, pa.binary(), f.nullable) if pa.types.is_string(f.type) else f
            for f in compared.schema
        )
    )
    columns = compared.column_names
    digests: Counter[str] = Counter()
    for row in compared.to_pylist():
        text = repr([(name, row[name]) for name in columns])
        digests[hashlib.sha256(text.encode()).hexdigest()] += 1
    return digests, left_out


def compare(lake_a: Path, lake_b: Path) -> list[tuple[str, int | None, int | None, str]]:
    """(table, rows in A, rows in B, verdict) for every table in either lake."""
    in_a, in_b = set(delta_tables(lake_a)), set(delta_tables(lake_b))
    results = []
    for table in sorted(in_a | in_b):
        if table not in in_a or table not in in_b:
            results.append((table, None, None, f"only in {'A' if table in in_a else 'B'}"))
            continue
        digests_a, left_out = row_digests(lake_a / table)
        digests_b, _ = row_digests(lake_b / table)
        rows_a, rows_b = sum(digests_a.values()), sum(digests_b.values())
        if digests_a == digests_b:
            verdict = "identical" + (f" (without {', '.join(left_out)})" if left_out else "")
        else:
            verdict = f"DIFFERENT: {sum((digests_a - digests_b).values())} rows of A not in B"
        results.append((table, rows_a, rows_b, verdict))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkage.lake_diff", description=__doc__.splitlines()[0])
    parser.add_argument("lake_a", type=Path)
    parser.add_argument("lake_b", type=Path)
    args = parser.parse_args(argv)
    results = compare(args.lake_a, args.lake_b)
    for table, rows_a, rows_b, verdict in results:
        print(
            f"{table:<42} {rows_a if rows_a is not None else '-':>9} {rows_b if rows_b is not None else '-':>9}  {verdict}"
        )
    same = all(verdict.startswith("identical") for *_, verdict in results)
    print(f"{len(results)} tables: {'all identical' if same else 'some differ'}")
    return 0 if same and results else 1


if __name__ == "__main__":
    sys.exit(main())
