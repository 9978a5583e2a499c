"""What QA meets in the MLflow 3 UI: a saved runs-table view of the link runs with their headline figures.

MLflow 3.17 keeps a saved view of the runs table as an experiment tag
`mlflow.sharedViewState.<id>` holding {name, createdAt, updatedAt, state}, where state is the
JSON of the table's search facets and columns (the UI's "Views" menu lists these tags). The
view below filters to link runs (a search filter also lists nested runs flat, out of their
collapsed pipeline run) and shows the headline metrics as columns.
"""

from __future__ import annotations

import json
import time

from mlflow.tracking import MlflowClient

VIEW_TAG_PREFIX = "mlflow.sharedViewState."
QA_VIEW_ID = "linkage-qa"
QA_VIEW_NAME = "Linkage QA: link runs and headline figures"
QA_VIEW_FILTER = "attributes.run_name LIKE 'link%'"
HEADLINE_COLUMNS = (
    "headline.records",
    "headline.persons",
    "headline.review_queue_pairs",
    "headline.model_expected_false_matches",
    "headline.model_expected_missed_matches",
    "headline.truth_precision",
    "headline.truth_recall",
    "headline.estimate.precision",
    "headline.estimate.precision.ci95_low",
    "headline.estimate.precision.ci95_high",
    "headline.estimate.recall",
    "headline.estimate.recall.ci95_low",
    "headline.estimate.recall.ci95_high",
    "headline.estimate.n.reviewed",
)


def metric_column(key: str) -> str:
    """The runs table's column key of a metric."""
    return f"metrics.`{key}`"


def qa_view_state() -> dict[str, object]:
    return {
        "searchFilter": QA_VIEW_FILTER,
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": [metric_column(k) for k in HEADLINE_COLUMNS],
        "columnOrder": [],
        "columnWidths": {},
        "runsExpanded": {},
        "runsPinned": [],
        "runsHidden": [],
        "runsVisibilityMap": {},
        "runsHiddenMode": "FIRST_10_RUNS",
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "autoRefreshEnabled": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def qa_view_link(experiment_id: str) -> str:
    """UI route (after the server's root) that opens the runs table in the saved QA view."""
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={QA_VIEW_ID}&workflowType=machine_learning"


def ensure_qa_view(client: MlflowClient, experiment_id: str, tags: dict[str, str]) -> None:
    """Save the QA view on the experiment when it is not there (edits QA saves over it in the UI are kept)."""
    key = VIEW_TAG_PREFIX + QA_VIEW_ID
    if key in tags:
        return
    now = int(time.time() * 1000)
    envelope = {
        "name": QA_VIEW_NAME,
        "createdAt": now,
        "updatedAt": now,
        "state": json.dumps(qa_view_state()),
    }
    client.set_experiment_tag(experiment_id, key, json.dumps(envelope))
