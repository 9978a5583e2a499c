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
# # Linkage QA notebook: the latest link run, and what changed since the one before
#
# Reads MLflow only (aggregates; no record-level data). Same configuration as the jobs:
# `LINKAGE_CONFIG` and `LINKAGE_SET` (`;`-separated `key=value`); `LINKAGE_RUN_ID` names a link run
# to review instead of the latest.

# %%
import os

import pandas as pd
from mlflow.tracking import MlflowClient

from linkage.config import load_config

config = load_config(
    os.environ.get("LINKAGE_CONFIG"), overrides=[s for s in os.environ.get("LINKAGE_SET", "").split(";") if s]
)
client = MlflowClient(config.tracking_uri)
experiment = client.get_experiment_by_name(config.tracking.experiment)
link_runs = client.search_runs(
    [experiment.experiment_id],
    filter_string="tags.job = 'link' and status = 'FINISHED'",
    order_by=["attributes.start_time DESC"],
    max_results=10,
)
print(f"{len(link_runs)} finished link runs in '{config.tracking.experiment}'")
# LINKAGE_RUN_ID picks the link run to review (default the latest); "previous" is the run before it.
if os.environ.get("LINKAGE_RUN_ID"):
    chosen = client.get_run(os.environ["LINKAGE_RUN_ID"])
    link_runs = [chosen, *[r for r in link_runs if r.info.start_time < chosen.info.start_time]]
latest = link_runs[0]

# %% [markdown]
# ## The latest run: parameters and headline metrics

# %%
print(
    "run",
    latest.info.run_id,
    "model version",
    latest.data.params.get("model_version"),
    "code",
    latest.data.tags.get("code_version"),
)
metrics = pd.Series(latest.data.metrics).sort_index()
headline = metrics[
    [k for k in metrics.index if k.startswith(("precision", "recall", "f1", "matches", "records"))]
]
print(headline.to_string())

# %% [markdown]
# ## Fairness: recall by group
# Look for the worst group: the target is within 2 points of the best.

# %%
by_group = metrics[[k for k in metrics.index if k.startswith("recall.")]]
print(by_group.to_string())
if len(by_group):
    print(f"spread of recall across groups: {by_group.max() - by_group.min():.4f}")

# %% [markdown]
# ## Compare with the previous run

# %%
if len(link_runs) > 1:
    previous = link_runs[1]
    both = pd.DataFrame(
        {"latest": pd.Series(latest.data.metrics), "previous": pd.Series(previous.data.metrics)}
    )
    both["change"] = both["latest"] - both["previous"]
    changed = both[both["change"].abs() > 0].sort_values("change")
    print(changed.to_string())
else:
    print("only one link run so far: nothing to compare")

# %% [markdown]
# ## Artifacts of the latest run (charts, model, QA report)

# %%
artifacts = [a.path for a in client.list_artifacts(latest.info.run_id)]
print(artifacts)
