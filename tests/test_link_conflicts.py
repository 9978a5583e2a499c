"""Clustering refuses chains through relatives, and QA counts the false-pair-prone link patterns, on hand-built data."""

from __future__ import annotations

from datetime import date

from builders import PAIR_SCHEMA, people_frame, person

from linkage.link import qa, spine

EDGE_SCHEMA = PAIR_SCHEMA + ", match_probability double, method string"


def union_find_clusters(spark, people, edges):
    """A plain connected components over the edges (the job uses Splink's): (source_dataset, source_record_id,
    record_uid, cluster_id)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for row in edges.collect():
        a, b = (
            find(f"{row.source_dataset_l}:{row.source_record_id_l}"),
            find(f"{row.source_dataset_r}:{row.source_record_id_r}"),
        )
        parent[max(a, b)] = min(a, b)
    rows = [
        (
            r.source_dataset,
            r.source_record_id,
            f"{r.source_dataset}:{r.source_record_id}",
            find(f"{r.source_dataset}:{r.source_record_id}"),
        )
        for r in people.collect()
    ]
    return spark.createDataFrame(
        rows, "source_dataset string, source_record_id string, record_uid string, cluster_id string"
    )


def cluster_sets(clusters) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for r in clusters.collect():
        groups.setdefault(r.cluster_id, set()).add(f"{r.source_dataset}:{r.source_record_id}")
    return {frozenset(g) for g in groups.values()}


def family_extract(spark):
    return people_frame(
        spark,
        [
            # A parent and child with one forename, two GP records, two valid numbers, and a third-sector record
            # (no number) of the child that links to both.
            person("gp", "parent", nhs_number="9434765919", date_of_birth=date(1975, 5, 6)),
            person("gp", "child", nhs_number="4010232137", date_of_birth=date(2004, 9, 1)),
            person("third_sector", "child", nhs_number=None, date_of_birth=date(2004, 9, 1)),
            # One date of birth, numbers one digit apart (no real pair of valid numbers is): not a conflict.
            person("gp", "twin1", nhs_number="6000000000", date_of_birth=date(2012, 3, 4)),
            person("gp", "twin2", nhs_number="5000000000", date_of_birth=date(2012, 3, 4)),
            # Twins: one date of birth, their own two numbers, forenames one keystroke apart, wrongly chained
            # through a hospital record without a number: a conflict.
            person(
                "gp", "twinA", nhs_number="9434765919", forename_std="AMELIA", date_of_birth=date(2012, 3, 4)
            ),
            person(
                "gp", "twinB", nhs_number="4010232137", forename_std="AMELIE", date_of_birth=date(2012, 3, 4)
            ),
            person(
                "hospital", "twinA", nhs_number=None, forename_std="AMELIA", date_of_birth=date(2012, 3, 4)
            ),
            # One person, a relative's number on one record, forenames equal: not a conflict.
            person(
                "gp", "rel1", nhs_number="9434765919", forename_std="GRACE", date_of_birth=date(1990, 1, 2)
            ),
            person(
                "hospital",
                "rel2",
                nhs_number="4010232137",
                forename_std="GRACE",
                date_of_birth=date(1990, 1, 2),
            ),
            # One person, a wrong-but-valid number (two digits apart) and a forename typo: not a conflict.
            person(
                "gp", "typo1", nhs_number="9434765919", forename_std="AMELIA", date_of_birth=date(2000, 1, 2)
            ),
            person(
                "hospital",
                "typo2",
                nhs_number="9435765912",
                forename_std="AMELIE",
                date_of_birth=date(2000, 1, 2),
            ),
            # A true duplicate whose second NHS number had a one-digit typo: standardisation made it null.
            person("gp", "dup1", nhs_number="7000000000", date_of_birth=date(1990, 1, 2)),
            person("hospital", "dup2", nhs_number=None, date_of_birth=date(1990, 1, 2)),
            # Siblings with different numbers linked by a clerical decision: a reviewer's match stands.
            person("gp", "sib1", nhs_number="8000000000", date_of_birth=date(2001, 2, 3)),
            person("gp", "sib2", nhs_number="8100000000", date_of_birth=date(2004, 7, 8)),
        ],
    )


def family_edges(spark):
    return spark.createDataFrame(
        [
            ("gp", "child", "third_sector", "child", 0.9999, "probabilistic"),
            ("gp", "parent", "third_sector", "child", 0.97, "probabilistic"),  # the weakest link of the chain
            ("gp", "twin1", "gp", "twin2", 0.96, "probabilistic"),
            ("gp", "twinA", "hospital", "twinA", 0.9999, "probabilistic"),
            (
                "gp",
                "twinB",
                "hospital",
                "twinA",
                0.97,
                "probabilistic",
            ),  # the weakest link of the twins' chain
            ("gp", "rel1", "hospital", "rel2", 0.999, "probabilistic"),
            ("gp", "typo1", "hospital", "typo2", 0.999, "probabilistic"),
            ("gp", "dup1", "hospital", "dup2", 0.96, "probabilistic"),
            ("gp", "sib1", "gp", "sib2", None, "clerical"),
        ],
        EDGE_SCHEMA,
    )


def test_conflicting_clusters_are_those_with_two_peoples_numbers(spark):
    people, edges = family_extract(spark), family_edges(spark)
    clusters = union_find_clusters(spark, people, edges)
    conflicted = {r.cluster_id for r in spine.conflicting_clusters(clusters, people).collect()}
    # The family chain, the clerical siblings (dates years apart) and the twins (numbers far apart, forenames not
    # equal); not the duplicate, the relative's number or the wrong-but-valid number.
    assert conflicted == {"gp:child", "gp:sib1", "gp:twinA"}


def test_a_chain_through_a_household_splits_at_its_weakest_link(spark):
    people, edges = family_extract(spark), family_edges(spark)
    clusters = union_find_clusters(spark, people, edges)
    kept, split, removed = spine.split_conflicting_clusters(
        edges, clusters, people, lambda e, records: union_find_clusters(spark, records, e), rounds=3
    )
    assert removed == 2
    assert cluster_sets(split) == {
        frozenset({"gp:parent"}),
        frozenset({"gp:child", "third_sector:child"}),
        frozenset({"gp:twin1", "gp:twin2"}),
        frozenset({"gp:twinA", "hospital:twinA"}),
        frozenset({"gp:twinB"}),
        frozenset({"gp:rel1", "hospital:rel2"}),
        frozenset({"gp:typo1", "hospital:typo2"}),
        frozenset({"gp:dup1", "hospital:dup2"}),
        frozenset({"gp:sib1", "gp:sib2"}),
    }
    assert kept.where("source_record_id_l = 'parent'").count() == 0


def test_no_rounds_means_no_split(spark):
    people, edges = family_extract(spark), family_edges(spark)
    clusters = union_find_clusters(spark, people, edges)
    _, split, removed = spine.split_conflicting_clusters(
        edges, clusters, people, lambda e, records: None, rounds=0
    )
    assert removed == 0 and frozenset({"gp:parent", "gp:child", "third_sector:child"}) in cluster_sets(split)


def test_link_patterns_count_household_links_with_dates_apart_and_links_across_two_numbers(spark):
    people = people_frame(
        spark,
        [
            person(
                "gp",
                "p",
                surname_std="OKAFOR",
                postcode_std="E1 6AN",
                nhs_number="9434765919",
                date_of_birth=date(1975, 5, 6),
            ),
            person(
                "gp",
                "c",
                surname_std="OKAFOR",
                postcode_std="E1 6AN",
                nhs_number="4010232137",
                date_of_birth=date(2004, 9, 1),
            ),
            person(
                "hospital",
                "c",
                surname_std="OKAFOR",
                postcode_std="E1 6AN",
                nhs_number=None,
                date_of_birth=date(1975, 5, 6),
            ),
            person(
                "hospital",
                "d",
                surname_std="OKAFOR",
                postcode_std="E1 6AN",
                nhs_number="4010232137",
                date_of_birth=date(2004, 9, 1),
            ),
            # A mother and son with one forename, the son under his father's surname, no NHS numbers.
            person(
                "gp",
                "m",
                forename_std="ALEX",
                surname_std="WILSON",
                postcode_std="N1 9GU",
                date_of_birth=date(1975, 5, 6),
            ),
            person(
                "social_care",
                "s",
                forename_std="ALEX",
                surname_std="BOATENG",
                postcode_std="N1 9GU",
                date_of_birth=date(2004, 9, 1),
            ),
            *(
                person(
                    "gp",
                    record_id,
                    forename_std=forename,
                    surname_std="MENSAH",
                    postcode_std="LS1 4AP",
                    nhs_number=number,
                    date_of_birth=date(2012, 3, 4),
                )
                for record_id, forename, number in (
                    ("t1", "AMELIA", "9434765919"),
                    ("t2", "AMELIE", "4010232137"),
                )
            ),
        ],
    )
    edges = spark.createDataFrame(
        [
            ("gp", "p", "gp", "c", 0.99, "probabilistic"),  # household, years apart, two numbers: all three
            ("gp", "c", "hospital", "c", 0.99, "probabilistic"),  # household, years apart, one number missing
            ("gp", "c", "hospital", "d", None, "nhs_number"),  # same number, same date: none
            ("gp", "t1", "gp", "t2", 0.99, "probabilistic"),  # twins: two numbers apart, forenames not equal
            ("gp", "m", "social_care", "s", 0.97, "probabilistic"),  # household by forename, years apart
        ],
        EDGE_SCHEMA,
    )
    assert qa.link_pattern_metrics(edges, people) == {
        "link_patterns.household_dob_years_apart": 3,
        "link_patterns.two_valid_nhs_numbers": 2,
        "link_patterns.two_valid_nhs_numbers_dob_years_apart": 1,
        "link_patterns.two_nhs_numbers_apart_forenames_differ": 1,
    }
