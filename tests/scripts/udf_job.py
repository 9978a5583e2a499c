"""A tiny job for subprocess tests: runs Python workers (a pandas UDF) through the job convention.

    python tests/scripts/udf_job.py ok|fail [--set key=value ...]

`ok` uppercases a value in a pandas UDF (needs pyarrow in the worker interpreter) and prints
the count; `fail` makes tasks fail on an identifiable value: an ANSI cast (caught) and then
a Python UDF raising with the value in its message.
"""

import os
import sys

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

from linkage.harness import JobContext, run_job

VALUE = "O'Neill 9434765919"


@pandas_udf(StringType())
def upper(values: pd.Series) -> pd.Series:
    return values.str.upper()


@pandas_udf(StringType())
def refuse(values: pd.Series) -> pd.Series:
    raise ValueError(f"cannot read {values.iloc[0]}")


def body(ctx: JobContext) -> None:
    values_df = ctx.spark.createDataFrame([(VALUE,)], "value string")
    if ctx.args.mode == "ok":
        ctx.say(
            f"rows upper-cased: {values_df.select(upper('value').alias('v')).where(F.col('v') != '').count()}"
        )
        return
    try:
        ctx.spark.conf.set("spark.sql.ansi.enabled", "true")
        values_df.select(F.col("value").cast("int")).collect()
    except Exception:  # noqa: BLE001 - the failure under test is the one below
        ctx.say("the cast failed, as it should")
    values_df.select(refuse("value")).collect()


def add_arguments(parser) -> None:
    parser.add_argument("mode", choices=["ok", "fail"])


if __name__ == "__main__":
    sys.exit(run_job("udf_job", "pandas UDF probe", body, sys.argv[1:], os.environ, add_arguments))
