"""CSV writing with pyarrow, plus the malformed rows quarantine must catch, spliced in between."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BOM = b"\xef\xbb\xbf"
MALFORMED_KINDS = ("wrong_field_count", "unparseable_date", "future_date", "blank_id")
UNPARSEABLE_DATES = ("31/02/2019", "2019-13-45", "not known", "00/00/0000", "2019-02-30")


def text(values: np.ndarray) -> pa.Array:
    """Strings with "" as missing (written as an empty field)."""
    return pa.array(values, type=pa.string(), mask=values == "")


def iso_dates(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("M8[D]"), mask=np.isnat(values)).cast(pa.string())


def mixed_dates(values: np.ndarray, is_dmy: np.ndarray) -> pa.Array:
    """YYYY-MM-DD, or DD/MM/YYYY where is_dmy: a merged extract from systems that differ, row by row."""
    days = pa.array(values.astype("M8[D]"), mask=np.isnat(values))
    dmy = pc.strftime(days.cast(pa.timestamp("s")), format="%d/%m/%Y")
    return pc.if_else(pa.array(is_dmy), dmy, days.cast(pa.string()))


def integers(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int64), mask=missing)


def decimals(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.float64), mask=np.isnan(values))


@dataclass(frozen=True)
class Malformed:
    """How to spoil rows of one file: which column is the mandatory id, which is a date, what to overwrite."""

    id_column: str
    date_column: str
    overwrite: dict[str, list[str]]  # column -> values cycled over the malformed rows


def malformed_lines(
    table: pa.Table, spec: Malformed, count: int, today: date, rng: np.random.Generator
) -> list[tuple[int, str, str]]:
    """`count` bad rows (position in the good rows, CSV line, kind), cycling through MALFORMED_KINDS."""
    if count == 0 or table.num_rows == 0:
        return []
    sample = table.take(pa.array(rng.integers(0, table.num_rows, count)))
    rows = [
        {name: ("" if value is None else str(value)) for name, value in row.items()}
        for row in sample.to_pylist()
    ]
    positions = np.sort(rng.integers(0, table.num_rows + 1, count))
    lines = []
    for i, row in enumerate(rows):
        for column, values in spec.overwrite.items():
            row[column] = values[i % len(values)]
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        fields = list(row.values())
        names = list(row)
        if kind == "unparseable_date":
            fields[names.index(spec.date_column)] = UNPARSEABLE_DATES[i % len(UNPARSEABLE_DATES)]
        elif kind == "future_date":
            fields[names.index(spec.date_column)] = (today + timedelta(days=30 + i * 37 % 900)).isoformat()
        elif kind == "blank_id":
            fields[names.index(spec.id_column)] = ""
        elif kind == "wrong_field_count":
            fields = fields + ["extra"] if i % 2 else fields[:-1]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        lines.append((int(positions[i]), buffer.getvalue(), kind))
    return lines


def write_csv(
    path: Path, table: pa.Table, bad: list[tuple[int, str, str]] = (), bom: bool = False
) -> list[tuple[int, str]]:
    """Write the table, with each bad line before the good row at its position; returns (line number, kind)."""
    written: list[tuple[int, str]] = []
    with open(path, "wb") as handle:
        if bom:
            handle.write(BOM)
        start = 0
        for j, (position, line, kind) in enumerate([*bad, (table.num_rows, "", "")]):
            _write_slice(handle, table.slice(start, position - start), include_header=(j == 0))
            start = position
            if line:
                handle.write(line.encode("utf-8"))
                written.append((position + j + 2, kind))  # +1 header, +1 one-based
    return written


def _write_slice(handle, table: pa.Table, include_header: bool) -> None:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=include_header))
    handle.write(memoryview(sink.getvalue()))
