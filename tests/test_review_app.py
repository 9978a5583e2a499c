"""The review app through Flask's test client: access token, CSRF, escaping, decisions appended to Delta."""

from __future__ import annotations

import re

import pytest

from linkage.errors import ConfigError
from linkage.lake import read_table, table_exists
from linkage.review.app import ReviewBackend, compared_rows, create_app
from linkage.review.server import reviewer_id
from linkage.review.store import Pair, ReviewData, ReviewStore
from linkage.schemas import REVIEW_DECISIONS

TOKEN = "correct-horse-battery-staple"
HOSTILE_NAME = "<script>alert(1)</script>"


def record(dataset: str, record_id: str, person_key: str, forename: str, **values) -> dict:
    base = {
        "source_dataset": dataset,
        "source_record_id": record_id,
        "person_key": person_key,
        "match_method": "probabilistic",
        "cluster_size": 1,
        "forename_std": forename,
        "surname_std": "SMITH",
        "date_of_birth": None,
        "year_of_birth": 1980,
        "sex": "F",
        "postcode_std": "LS1 4AB",
    }
    return {**base, **values}


@pytest.fixture
def store(spark, lake) -> ReviewStore:
    store = ReviewStore(spark, str(lake), "reviewer-1")
    records = [
        record("hospital", "h1", "P1", HOSTILE_NAME),
        record("gp", "g1", "P2", "ANNE", postcode_std="LS2 9ZZ"),
        record("gp", "g2", "P2", "ANNIE"),
        record("social_care", "s1", "P2", "ANN"),
    ]
    store.data = ReviewData(
        # The queue spells the pair right-first; the store keeps the canonical order (gp before hospital).
        queues={
            "review_queue": [
                Pair("review_queue", 0, ("gp", "g1", "hospital", "h1"), 3.2, 0.9),
                Pair("review_queue", 1, ("gp", "g2", "hospital", "h1"), 1.0, 0.67),
            ]
        },
        records={(r["source_dataset"], r["source_record_id"]): r for r in records},
        persons={"P1": [("hospital", "h1")], "P2": [("gp", "g1"), ("gp", "g2"), ("social_care", "s1")]},
    )
    return store


@pytest.fixture
def client(store):
    app = create_app(ReviewBackend(store, model=None), TOKEN, "reviewer-1")
    return app.test_client()


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"csrf_token": token, "token": TOKEN}).status_code == 302


def test_every_page_needs_the_access_token(client):
    for path in ("/", "/queue/review_queue", "/pair/review_queue/0", "/person/0"):
        assert client.get(path).status_code == 401
    form_token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"csrf_token": form_token}).status_code == 401
    assert client.post("/login", data={"csrf_token": form_token, "token": TOKEN[:-1]}).status_code == 401
    assert client.get("/pair/review_queue/0").status_code == 401
    assert client.post("/login", data={"csrf_token": form_token, "token": TOKEN}).status_code == 302
    assert client.get("/pair/review_queue/0").status_code == 200


def test_a_cross_site_post_without_the_form_token_is_refused(client, spark, lake):
    sign_in(client)
    response = client.post(
        "/pair/review_queue/0",
        data={"decision": "match"},
        headers={"Origin": "https://elsewhere.example", "Referer": "https://elsewhere.example/x"},
    )
    assert response.status_code == 400
    response = client.post("/person/1/split", data={"record": "0"})
    assert response.status_code == 400
    assert not table_exists(spark, str(lake), REVIEW_DECISIONS)


def test_html_in_a_name_renders_as_text(client):
    sign_in(client)
    for path in ("/pair/review_queue/0", "/person/0"):
        page = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert HOSTILE_NAME not in page
    assert "script-src 'self'" in client.get("/").headers["Content-Security-Policy"]


def test_a_decision_is_appended_with_reviewer_note_and_queue(client, spark, lake):
    sign_in(client)
    page = client.get("/pair/review_queue/0").get_data(as_text=True)
    response = client.post(
        "/pair/review_queue/0",
        data={"csrf_token": csrf_token(page), "decision": "non_match", "note": "common_name"},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/pair/review_queue/1")
    client.post("/pair/review_queue/0", data={"csrf_token": csrf_token(page), "decision": "unsure"})
    rows = read_table(spark, str(lake), REVIEW_DECISIONS).orderBy("decided_at").collect()
    assert [
        (r.source_dataset_l, r.source_record_id_l, r.source_dataset_r, r.source_record_id_r) for r in rows
    ] == [("gp", "g1", "hospital", "h1")] * 2
    assert [(r.decision, r.note, r.queue, r.decided_by) for r in rows] == [
        ("non_match", "common_name", "review_queue", "reviewer-1"),
        ("unsure", None, "review_queue", "reviewer-1"),
    ]
    page = client.get("/pair/review_queue/0").get_data(as_text=True)
    assert "Decided: <strong>unsure</strong>" in page


def test_a_decision_outside_the_closed_lists_is_refused(client, spark, lake):
    sign_in(client)
    token = csrf_token(client.get("/pair/review_queue/0").get_data(as_text=True))
    assert (
        client.post("/pair/review_queue/0", data={"csrf_token": token, "decision": "maybe"}).status_code
        == 400
    )
    assert (
        client.post(
            "/pair/review_queue/0", data={"csrf_token": token, "decision": "match", "note": "free text"}
        ).status_code
        == 400
    )
    assert not table_exists(spark, str(lake), REVIEW_DECISIONS)


def test_splitting_a_person_records_non_match_between_the_parts(client, spark, lake):
    sign_in(client)
    page = client.get("/person/1").get_data(as_text=True)  # person_keys sorted: P1, P2
    assert page.count('name="record"') == 3
    client.post("/person/1/split", data={"csrf_token": csrf_token(page), "record": "2"})  # social_care s1
    rows = read_table(spark, str(lake), REVIEW_DECISIONS).collect()
    assert sorted((r.source_record_id_l, r.source_record_id_r, r.decision, r.queue) for r in rows) == [
        ("g1", "s1", "non_match", "cluster_split"),
        ("g2", "s1", "non_match", "cluster_split"),
    ]


def test_blind_mode_hides_the_score(client):
    sign_in(client)
    page = client.get("/pair/review_queue/0").get_data(as_text=True)
    assert "3.20" in page
    client.post("/blind", data={"csrf_token": csrf_token(page), "next": "/pair/review_queue/0"})
    page = client.get("/pair/review_queue/0").get_data(as_text=True)
    assert "Score hidden" in page and "3.20" not in page
    assert client.get("/queue/review_queue").get_data(as_text=True).count("0.900") == 0


def test_compared_rows_mark_differences():
    left = record("gp", "1", "P", "ANNE", postcode_std="LS1 4AB", forename_raw="Anne")
    right = record("gp", "2", "P", "ANNIE", postcode_std="ls1 4ab", sex=None)
    states = {row["label"]: row["state"] for row in compared_rows(left, right)}
    assert states == {
        "Forename": "differs",
        "Surname": "same",
        "Year of birth": "same",
        "Sex": "missing",
        "Postcode": "same",
    }


def test_reviewer_id_comes_from_the_environment():
    assert reviewer_id({"LINKAGE_REVIEWER": "qa.team-7"}) == "qa.team-7"
    assert reviewer_id({}) != ""
    with pytest.raises(ConfigError):
        reviewer_id({"LINKAGE_REVIEWER": "Jane Smith <script>"})


def test_the_evidence_shown_reproduces_the_link_runs_score(spark, pipeline_run):
    """Splink on DuckDB over the two records, with term frequencies over people_std, gives the link run's weight."""
    from linkage.review.server import build_backend

    assert pipeline_run.exit_code == 0, pipeline_run.stderr[-2000:]
    backend = build_backend(spark, pipeline_run.config(), "reviewer-1", None)  # reads only
    pairs = backend.data.queues["review_queue"][:3]
    assert pairs, "the pipeline's review queue is empty"
    for pair in pairs:
        waterfall = backend.waterfall(pair)
        assert waterfall.steps[0].comparison == "Prior"
        assert waterfall.match_weight == pytest.approx(
            sum(step.match_weight for step in waterfall.steps), abs=1e-6
        )
        assert waterfall.match_weight == pytest.approx(pair.match_weight, abs=0.01)


def test_the_store_reads_both_queues_persons_and_old_decisions(spark, lake):
    """review_sample is read when present (in sample_id order, not by score); decisions written before the note
    and queue columns existed still read."""

    def save(rows, ddl, name):
        spark.createDataFrame(rows, ddl).write.format("delta").save(f"{lake}/restricted/{name}")

    pair = "source_dataset_l string, source_record_id_l string, source_dataset_r string, source_record_id_r string"
    save(
        [("hospital", "h1", "gp", "g1", 0.9, 3.2, "run")],
        f"{pair}, match_probability double, match_weight double, run_id string",
        "review_queue",
    )
    save(
        [
            ("s-2", "links:high", "gp", "g2", "gp", "g3", 9.0, 0.998, 0.1, "run"),
            ("s-1", "near:low", "gp", "g1", "social_care", "s1", -1.0, 0.33, 0.5, "run"),
        ],
        "sample_id string, stratum string, source_dataset_l string, source_record_id_l string, "
        "source_dataset_r string, source_record_id_r string, match_weight double, match_probability double, "
        "inclusion_probability double, run_id string",
        "review_sample",
    )
    save(
        [
            (d, r, p, "probabilistic", 1)
            for d, r, p in (
                ("gp", "g1", "P1"),
                ("gp", "g2", "P2"),
                ("gp", "g3", "P2"),
                ("hospital", "h1", "P3"),
                ("social_care", "s1", "P1"),
                ("gp", "g9", "P1"),
            )
        ],
        "source_dataset string, source_record_id string, person_key string, match_method string, cluster_size int",
        "person_spine",
    )
    save(
        [
            (d, r, f"NAME-{r}")
            for d, r in (
                ("gp", "g1"),
                ("gp", "g2"),
                ("gp", "g3"),
                ("hospital", "h1"),
                ("social_care", "s1"),
                ("gp", "g9"),
                ("gp", "g10"),
            )
        ],
        "source_dataset string, source_record_id string, forename_std string",
        "people_std",
    )
    save(
        [("gp", "g1", "hospital", "h1", "match", "r0", None)],
        f"{pair}, decision string, decided_by string, decided_at timestamp",
        "review_decisions",
    )

    data = ReviewStore(spark, str(lake), "reviewer-1").load()
    assert [p.key for p in data.queues["review_queue"]] == [("gp", "g1", "hospital", "h1")]
    assert [(p.key, p.stratum) for p in data.queues["sample"]] == [
        (("gp", "g1", "social_care", "s1"), "near:low"),
        (("gp", "g2", "gp", "g3"), "links:high"),
    ]
    assert data.persons == {
        "P1": [("gp", "g1"), ("gp", "g9"), ("social_care", "s1")],
        "P2": [("gp", "g2"), ("gp", "g3")],
        "P3": [("hospital", "h1")],
    }
    assert ("gp", "g10") not in data.records and data.records[("gp", "g9")]["forename_std"] == "NAME-g9"
    decision = data.decisions[("gp", "g1", "hospital", "h1")]
    assert (decision.decision, decision.note, decision.queue) == ("match", None, None)
    # Appending to a table written before note and queue existed adds the columns (older rows read null).
    store = ReviewStore(spark, str(lake), "reviewer-2")
    store.data = data
    store.decide([("hospital", "h1", "gp", "g1")], "non_match", "family_member", "review_queue")
    rows = read_table(spark, str(lake), REVIEW_DECISIONS).orderBy("decided_by").collect()
    assert [(r.source_record_id_l, r.decision, r.decided_by, r.note, r.queue) for r in rows] == [
        ("g1", "match", "r0", None, None),
        ("g1", "non_match", "reviewer-2", "family_member", "review_queue"),
    ]


def test_the_job_exits_2_on_bad_configuration_or_reviewer_id(capsys):
    from jobs import review as review_job

    assert review_job.main(["--set", "no_such.key=1"], {"LINKAGE_REVIEWER": "qa-1"}) == 2
    assert review_job.main([], {"LINKAGE_REVIEWER": "not an id"}) == 2
    assert "LINKAGE_REVIEWER" in capsys.readouterr().err
