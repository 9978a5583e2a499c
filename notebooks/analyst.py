# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (linkage)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Analyst notebook: people, cohorts, time travel
#
# Reads the pseudonymised and cohort zones only. Open it with `jupytext --to notebook
# notebooks/analyst.py` or run it as a script. It uses the same configuration as the jobs:
# `LINKAGE_CONFIG` (an overlay, default `conf/local.yaml`) and `LINKAGE_SET` (`;`-separated
# `key=value` overrides), so it reads the lake the pipeline wrote.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from linkage.catalog import published_release, published_tables  # noqa: E402
from linkage.config import load_config  # noqa: E402
from linkage.releases.catalog import register_catalog  # noqa: E402
from linkage.session import lake_session  # noqa: E402

config = load_config(
    os.environ.get("LINKAGE_CONFIG"), overrides=[s for s in os.environ.get("LINKAGE_SET", "").split(";") if s]
)
# The project's session with the lake's names: every table below is the published release's version.
spark = lake_session(config)
lake = config.paths.lake
print(f"published release: {published_release(lake)}")
figures = Path(os.environ.get("LINKAGE_FIGURES", Path(lake) / "figures"))
figures.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## People
# One row per pseudonymous `person_id`, with generalised attributes only.

# %%
person = spark.table("pseudonymised.person")
people_by_band = spark.sql(
    "SELECT age_band, count(*) AS count FROM pseudonymised.person GROUP BY age_band ORDER BY age_band"
)
people_by_band.show(30)
sources = person.select(
    *[
        F.sum(F.col(c).cast("int")).alias(c)
        for c in ("in_gp", "in_hospital", "in_social_care", "in_third_sector")
    ]
)
sources.show()

# %% [markdown]
# ## Cohorts
# Person-level cohort tables are `cohorts.cohort_<name>`; the disclosure-controlled counts
# safe to share are `cohorts.cohort_<name>_summary`.

# %%
cohort_names = sorted(
    t.name.removeprefix("cohort_")
    for t in spark.catalog.listTables("cohorts")
    if t.name.startswith("cohort_") and not t.name.endswith("_summary")
)
cohort_sizes = {name: spark.table(f"cohorts.cohort_{name}").count() for name in cohort_names}
print(cohort_sizes)
first_cohort = cohort_names[0]
# Cohort tables carry the person's generalised attributes; join person for anything else.
cohort = spark.table(f"cohorts.cohort_{first_cohort}")
cohort.groupBy("ethnic_group").count().orderBy("ethnic_group").show()
(
    cohort.join(person.select("person_id", "postcode_district"), "person_id", how="left")
    .groupBy("postcode_district")
    .count()
    .orderBy(F.desc("count"))
    .show(5)
)

# %% [markdown]
# ## Releases, time travel and table history
# Names resolve to the published release. `register_catalog(spark, lake, "<release id>")` points
# them at an earlier release (ids: `python -m jobs.release list`); without Spark,
# `linkage.catalog.published_tables(lake)` gives each table's path and version.
# Every write is one Delta version stamped with the MLflow run that made it.

# %%
person_ref = published_tables(lake)["pseudonymised.person"]
history = spark.sql(f"DESCRIBE HISTORY delta.`{person_ref.path}`")
history.select("version", "timestamp", "operation", "userMetadata").show(truncate=False)
first_version = history.agg(F.min("version")).first()[0]
person_then = spark.read.format("delta").option("versionAsOf", first_version).load(person_ref.path)
print(
    f"persons now: {person.count()} (version {person_ref.version}), at version {first_version}: "
    f"{person_then.count()}"
)
register_catalog(spark, lake, published_release(lake))  # the same call opens an earlier release by id

# %% [markdown]
# ## One plot: people by age band and sex

# %%
counts = person.groupBy("age_band", "sex").count().toPandas()
table = counts.pivot_table(index="age_band", columns="sex", values="count", fill_value=0).sort_index()
axis = table.plot.bar(figsize=(8, 4), title="People by age band and sex")
axis.set_ylabel("people")
plt.tight_layout()
plot_path = figures / "people_by_age_band_sex.png"
plt.savefig(plot_path)
print(f"saved {plot_path}")
