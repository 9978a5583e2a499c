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

from linkage.config import load_config  # noqa: E402
from linkage.session import build_spark  # noqa: E402

config = load_config(os.environ.get("LINKAGE_CONFIG"),
                     overrides=[s for s in os.environ.get("LINKAGE_SET", "").split(";") if s])
spark = build_spark(config.spark)
lake = config.paths.lake
figures = Path(os.environ.get("LINKAGE_FIGURES", Path(lake) / "figures"))
figures.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## People
# One row per pseudonymous `person_id`, with generalised attributes only.

# %%
person = spark.read.format("delta").load(f"{lake}/pseudonymised/person")
people_by_band = person.groupBy("age_band").count().orderBy("age_band")
people_by_band.show(30)
sources = person.select(*[F.sum(F.col(c).cast("int")).alias(c) for c in
                          ("in_gp", "in_hospital", "in_social_care", "in_third_sector")])
sources.show()

# %% [markdown]
# ## Cohorts
# Person-level cohort tables are `cohorts/cohort_<name>`; the disclosure-controlled counts
# safe to share are `cohorts/cohort_<name>_summary`.

# %%
cohort_names = sorted(p.name.removeprefix("cohort_") for p in Path(lake, "cohorts").iterdir()
                      if p.name.startswith("cohort_") and not p.name.endswith("_summary"))
cohort_sizes = {name: spark.read.format("delta").load(f"{lake}/cohorts/cohort_{name}").count()
                for name in cohort_names}
print(cohort_sizes)
first_cohort = cohort_names[0]
# Cohort tables carry the person's generalised attributes; join person for anything else.
cohort = spark.read.format("delta").load(f"{lake}/cohorts/cohort_{first_cohort}")
cohort.groupBy("ethnic_group").count().orderBy("ethnic_group").show()
(cohort.join(person.select("person_id", "postcode_district"), "person_id", "left")
 .groupBy("postcode_district").count().orderBy(F.desc("count")).show(5))

# %% [markdown]
# ## Time travel and table history
# Every write is one Delta version stamped with the MLflow run that made it.

# %%
history = spark.sql(f"DESCRIBE HISTORY delta.`{lake}/pseudonymised/person`")
history.select("version", "timestamp", "operation", "userMetadata").show(truncate=False)
first_version = history.agg(F.min("version")).first()[0]
person_then = spark.read.format("delta").option("versionAsOf", first_version).load(f"{lake}/pseudonymised/person")
print(f"persons now: {person.count()}, at version {first_version}: {person_then.count()}")

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
