"""person_key -> person_id: keyed HMAC-SHA256 (RFC 2104) under the release key, as lower-case hex.

Why Python's `hmac` in an Arrow function and not Spark's own functions: an HMAC composed from
`sha2`/`unhex`/`concat` needs the key (as the xored inner and outer pads) as literals in the query,
and literals are printed by `explain()`, shown in the Spark UI and written to event logs - the key
would leak to anyone who can read those. Here the key lives only in the Python function's closure:
Spark ships it to executors as opaque pickled bytes and plans show just the function's name. The
function sees one row per distinct person (not per record or event), so it is not a hot path.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

PERSON_KEY_TO_ID_SCHEMA = "person_key string, person_id string"


def pseudonym(person_key: str, key: bytes) -> str:
    """HMAC-SHA256 of the UTF-8 person_key under the release key, hex: the person_id."""
    return hmac.new(key, person_key.encode("utf-8"), hashlib.sha256).hexdigest()


def person_id_for(person_key_df: DataFrame, key: bytes) -> DataFrame:
    """(person_key, person_id) for each distinct non-null person_key of the frame's `person_key` column."""
    distinct_keys_df = (
        person_key_df.select(F.col("person_key").cast("string"))
        .where(F.col("person_key").isNotNull())
        .distinct()
    )
    return distinct_keys_df.mapInArrow(_keyed_hmac_batches(key), PERSON_KEY_TO_ID_SCHEMA)


def _keyed_hmac_batches(key: bytes) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    # A closure rather than a module global or a broadcast: nothing else in the job can reach the key.
    # It uses only the standard library and pyarrow, so executors need no copy of this package.
    def keyed_hmac(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import hashlib
        import hmac

        import pyarrow as pa

        for batch in batches:
            person_keys = batch.column(0)
            person_ids = [
                None if value is None else hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
                for value in person_keys.to_pylist()
            ]
            yield pa.RecordBatch.from_arrays(
                [person_keys, pa.array(person_ids, type=pa.string())], names=["person_key", "person_id"]
            )

    return keyed_hmac
