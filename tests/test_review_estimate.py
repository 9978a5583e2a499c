"""Sampling allocation and the accuracy estimators, checked by hand and by simulation (no Spark)."""

from __future__ import annotations

import random

import pytest

from linkage.review.estimate import ReviewedPair, estimate, estimate_metrics, stratified_variance, wilson
from linkage.review.sampling import allocate

NO_GROUPS = {"ethnic_group": "White", "sex": "F", "age_band": "25-44", "imd_quintile": "1"}


def pair(stratum: str, size: int, linked: bool, match: bool | None, **groups: str) -> ReviewedPair:
    return ReviewedPair(stratum, size, linked, match, {**NO_GROUPS, **groups})


def test_wilson_interval_of_an_all_success_sample_stays_below_one():
    low, high = wilson(1.0, 300)
    assert high == pytest.approx(1.0)
    assert low == pytest.approx(300 / (300 + 1.959963984540054**2))  # Wilson's lower bound at p = 1


def test_stratified_variance_with_finite_population_correction():
    # stratum a: N=10, values 0,1 -> s2 = 0.5, m=2: 10^2 * (1 - 2/10) * 0.5 / 2 = 20; a census stratum adds nothing
    assert stratified_variance({"a": [0.0, 1.0], "b": [1.0, 0.0, 1.0]}, {"a": 10, "b": 3}) == pytest.approx(
        20.0
    )


def test_estimates_by_hand():
    # links: stratum L of 10 pairs, 2 reviewed, 1 match -> TP = 5, FP = 5, precision 0.5
    # near misses: stratum M of 100 pairs, 4 reviewed, 1 match -> 25 missed; recall = 5 / 30
    pairs = [
        pair("L", 10, True, True),
        pair("L", 10, True, False),
        pair("M", 100, False, True),
        *[pair("M", 100, False, False)] * 3,
        pair("M", 100, False, None),
    ]  # not reviewed: left out of m_h
    result = estimate(pairs)
    assert result.precision.estimate == pytest.approx(0.5)
    assert result.recall.estimate == pytest.approx(5 / 30)
    assert result.false_matches.estimate == pytest.approx(5)
    assert result.missed_matches.estimate == pytest.approx(25)
    assert result.linked_pairs == pytest.approx(10)
    assert (result.reviewed_links, result.reviewed_matches, result.reviewed) == (2, 2, 6)
    for interval in (result.precision, result.recall, result.false_matches, result.missed_matches):
        assert interval.low <= interval.estimate <= interval.high


def test_group_estimates_use_the_group_pairs_only():
    pairs = [
        pair("L", 4, True, True, sex="F"),
        pair("L", 4, True, False, sex="M"),
        pair("L", 4, True, True, sex="M"),
        pair("L", 4, True, True, sex="F"),
    ]
    metrics = estimate_metrics(pairs)
    assert metrics["estimate.precision"] == pytest.approx(0.75)
    assert metrics["estimate.sex.F.precision"] == pytest.approx(1.0)
    assert metrics["estimate.sex.M.precision"] == pytest.approx(0.5)
    assert metrics["estimate.sex.M.n.links_reviewed"] == 2
    assert metrics["estimate.sex.F.precision.ci95_low"] < 1.0


def test_allocation_keeps_a_minimum_caps_at_the_stratum_and_spends_the_sample():
    sizes = {"tiny": 1, "certain_links": 400, "uncertain": 300, "hopeless": 5000}
    guesses = {"tiny": 0.5, "certain_links": 0.999, "uncertain": 0.5, "hopeless": 0.0001}
    taken = allocate(sizes, guesses, 100)
    assert sum(taken.values()) == 100
    assert taken["tiny"] == 1
    assert all(taken[h] >= 2 for h in ("certain_links", "uncertain", "hopeless"))
    # Neyman: 300 * 0.5 = 150 beats 400 * 0.0995 = 40 and 5000 * 0.0995 = 497 ... the largest N*sd gets most
    assert taken["hopeless"] > taken["uncertain"] > taken["certain_links"]
    assert allocate({"a": 3, "b": 2}, {}, 100) == {
        "a": 3,
        "b": 2,
    }  # a census when the sample exceeds the frame


def test_intervals_cover_the_true_precision_and_recall_about_95_percent_of_the_time():
    """Simulated frames: draw a stratified sample many times; the 95% intervals should cover most of the time."""
    rng = random.Random(7)
    # stratum: (size, is_linked, true match rate): high-weight links, weaker links, near misses, weak near misses
    design = {
        "link|high": (600, True, 0.995),
        "link|low": (150, True, 0.85),
        "near|best": (200, False, 0.3),
        "near|other": (3000, False, 0.004),
    }
    population = {h: [rng.random() < rate for _ in range(size)] for h, (size, _, rate) in design.items()}
    tp = sum(sum(population[h]) for h, (_, linked, _) in design.items() if linked)
    linked_pairs = sum(size for size, linked, _ in design.values() if linked)
    missed = sum(sum(population[h]) for h, (_, linked, _) in design.items() if not linked)
    true_precision, true_recall = tp / linked_pairs, tp / (tp + missed)
    allocation = {"link|high": 60, "link|low": 60, "near|best": 60, "near|other": 120}
    covered_precision = covered_recall = 0
    runs = 200
    for _ in range(runs):
        sample = [
            pair(h, design[h][0], design[h][1], match)
            for h, k in allocation.items()
            for match in rng.sample(population[h], k)
        ]
        result = estimate(sample)
        covered_precision += result.precision.low <= true_precision <= result.precision.high
        covered_recall += result.recall.low <= true_recall <= result.recall.high
    assert covered_precision / runs >= 0.9
    assert covered_recall / runs >= 0.88
