"""GrowthBook's bucketing, checked against the JavaScript SDK's own test vectors.

Expected values are copied from GrowthBook's shared SDK test cases, growthbook/growthbook
packages/sdk-js/test/cases.json (spec version 0.5.4), sections "hash", "getBucketRange",
"chooseVariation", "inNamespace" and "getEqualWeights", plus the hash-version-2 buckets of its
"feature" and "stickyBucket" sections. Every GrowthBook SDK must reproduce them.
"""

import random

import pytest
from scipy import stats

from experiments.hashing import bucket_ranges, choose_variation, equal_weights, fnv1a32, hash, in_namespace


@pytest.mark.parametrize(
    ("seed", "value", "version", "expected"),
    [
        ("", "a", 1, 0.22),
        ("", "b", 1, 0.077),
        ("b", "a", 1, 0.946),
        ("ef", "d", 1, 0.652),
        ("asdf", "8952klfjas09ujk", 1, 0.549),
        ("", "123", 1, 0.011),
        ("", '___)((*":&', 1, 0.563),
        ("seed", "a", 2, 0.0505),
        ("seed", "b", 2, 0.2696),
        ("foo", "ab", 2, 0.2575),
        ("foo", "def", 2, 0.2019),
        ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
        ("90850943850283058242805", "123", 2, 0.7516),
        ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
        ("abc", "def", 99, None),
    ],
)
def test_hash_matches_growthbook(seed, value, version, expected):
    # when
    position = hash(seed, value, version)

    # then
    assert position == expected


@pytest.mark.parametrize(
    ("seed", "unit_id", "expected"),
    [
        # "feature" cases: "creates experiments properly", "Support passthrough variations", "Support holdout groups"
        ("feature", "123", 0.5231),
        ("experiment", "1", 0.4413),
        ("holdout", "1", 0.8043),
        # "stickyBucket" cases: the buckets of deviceId d123 and id i123 in "feature-exp"
        ("feature-exp", "d123", 0.6468),
        ("feature-exp", "i123", 0.9943),
    ],
)
def test_version_2_buckets_of_growthbook_experiments(seed, unit_id, expected):
    # when / then
    assert hash(seed, unit_id, 2) == expected


def test_growthbook_sticky_bucket_case_lands_in_the_same_variations():
    # given the "stickyBucket" case's 3-way split (0.3334 / 0.3333 / 0.3333) of "feature-exp"
    ranges = bucket_ranges(3, 1.0, [0.3334, 0.3333, 0.3333])

    # when / then: deviceId d123 gets variation 1, id i123 variation 2 (when no sticky doc overrides it)
    assert choose_variation(hash("feature-exp", "d123", 2), ranges) == 1
    assert choose_variation(hash("feature-exp", "i123", 2), ranges) == 2


def _reference_fnv1a32(code_units):
    value = 0x811C9DC5
    for unit in code_units:
        value ^= unit
        value = (value * 16777619) % 2**32
    return value


def test_fnv_hashes_utf16_code_units_like_javascript_char_code_at():
    # given a string outside ASCII and outside the Basic Multilingual Plane: "é" is one code unit, the
    # emoji U+1F600 a surrogate pair (0xD83D, 0xDE00) in JavaScript
    text = "é😀"

    # when / then
    assert fnv1a32(text) == _reference_fnv1a32([0x00E9, 0xD83D, 0xDE00])
    assert fnv1a32("abc") == _reference_fnv1a32([97, 98, 99])
    # the published FNV-1a 32-bit test vector for "a"
    assert fnv1a32("a") == 0xE40C292C


@pytest.mark.parametrize(
    ("count", "coverage", "weights", "expected"),
    [
        (2, 1, None, [(0, 0.5), (0.5, 1)]),
        (2, 0.5, None, [(0, 0.25), (0.5, 0.75)]),
        (2, 0, None, [(0, 0), (0.5, 0.5)]),
        (4, 1, None, [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
        (2, 1, [0.4, 0.6], [(0, 0.4), (0.4, 1)]),
        (3, 1, [0.2, 0.3, 0.5], [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
        (3, 0.2, [0.2, 0.3, 0.5], [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
        (2, -0.2, None, [(0, 0), (0.5, 0.5)]),
        (2, 1.5, None, [(0, 0.5), (0.5, 1)]),
        (2, 1, [0.4, 0.1], [(0, 0.5), (0.5, 1)]),
        (2, 1, [0.7, 0.6], [(0, 0.5), (0.5, 1)]),
        (4, 1, [0.4, 0.4, 0.2], [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
        (2, 1, [0.4, 0.5999], [(0, 0.4), (0.4, 0.9999)]),
    ],
    ids=[
        "normal 50/50",
        "reduced coverage",
        "zero coverage",
        "4 variations",
        "uneven weights",
        "uneven weights, 3 variations",
        "uneven weights, reduced coverage, 3 variations",
        "negative coverage",
        "coverage above 1",
        "weights sum below 1",
        "weights sum above 1",
        "weights.length not equal to num variations",
        "weights sum almost equals 1",
    ],
)
def test_bucket_ranges_match_growthbook(count, coverage, weights, expected):
    # when
    ranges = bucket_ranges(count, coverage, weights)

    # then
    assert len(ranges) == len(expected)
    for (start, end), (expected_start, expected_end) in zip(ranges, expected, strict=True):
        assert start == pytest.approx(expected_start, abs=1e-12)
        assert end == pytest.approx(expected_end, abs=1e-12)


EVEN = [(0, 0.5), (0.5, 1)]
REDUCED = [(0, 0.25), (0.5, 0.75)]


@pytest.mark.parametrize(
    ("position", "ranges", "expected"),
    [
        (0.2, EVEN, 0),
        (0.4, EVEN, 0),
        (0.6, EVEN, 1),
        (0.8, EVEN, 1),
        (0, EVEN, 0),
        (0.5, EVEN, 1),
        (0.2, REDUCED, 0),
        (0.4, REDUCED, -1),
        (0.6, REDUCED, 1),
        (0.8, REDUCED, -1),
        (0.25, REDUCED, -1),
        (0.5, REDUCED, 1),
        (0.5, [(0, 0.5), (0.5, 0.5), (0.5, 1)], 2),
    ],
)
def test_choose_variation_matches_growthbook(position, ranges, expected):
    # when / then
    assert choose_variation(position, ranges) == expected


@pytest.mark.parametrize(
    ("unit_id", "namespace", "expected"),
    [
        ("1", ("namespace1", 0, 0.4), False),
        ("1", ("namespace1", 0.4, 1), True),
        ("1", ("namespace2", 0, 0.4), False),
        ("1", ("namespace2", 0.4, 1), True),
        ("2", ("namespace1", 0, 0.4), False),
        ("2", ("namespace1", 0.4, 1), True),
        ("2", ("namespace2", 0, 0.4), False),
        ("2", ("namespace2", 0.4, 1), True),
        ("3", ("namespace1", 0, 0.4), False),
        ("3", ("namespace1", 0.4, 1), True),
        ("3", ("namespace2", 0, 0.4), True),
        ("3", ("namespace2", 0.4, 1), False),
        ("4", ("namespace1", 0, 0.4), False),
        ("4", ("namespace1", 0.4, 1), True),
        ("4", ("namespace2", 0, 0.4), True),
        ("4", ("namespace2", 0.4, 1), False),
    ],
)
def test_in_namespace_matches_growthbook(unit_id, namespace, expected):
    # when / then
    assert in_namespace(unit_id, namespace) is expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [(-1, []), (0, []), (1, [1]), (2, [0.5, 0.5]), (3, [0.33333333] * 3), (4, [0.25] * 4)],
)
def test_equal_weights_match_growthbook(count, expected):
    # when / then
    assert equal_weights(count) == pytest.approx(expected, abs=1e-8)


def _fixed_ids(count: int) -> list[str]:
    generator = random.Random(20261124)
    return [f"user-{generator.getrandbits(64):016x}" for _ in range(count)]


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.2, 0.3, 0.5)], ids=["50/50", "20/30/50"])
def test_100k_ids_split_as_the_weights_say(weights):
    # given 100,000 fixed ids
    ids = _fixed_ids(100_000)
    ranges = bucket_ranges(len(weights), 1.0, list(weights))

    # when
    counts = [0] * len(weights)
    for unit_id in ids:
        counts[choose_variation(hash("checkout-test", unit_id, 2), ranges)] += 1

    # then: a chi-square goodness-of-fit test does not reject the intended split
    expected = [weight * len(ids) for weight in weights]
    result = stats.chisquare(counts, expected)
    assert result.pvalue > 0.001, (counts, result)


def test_a_lopsided_split_is_rejected_by_the_same_check():
    # given the 50/50 split's counts, tested against a 51/49 expectation: the check has power
    ids = _fixed_ids(100_000)
    ranges = bucket_ranges(2, 1.0, [0.5, 0.5])
    counts = [0, 0]
    for unit_id in ids:
        counts[choose_variation(hash("checkout-test", unit_id, 2), ranges)] += 1

    # when
    result = stats.chisquare(counts, [51_000, 49_000])

    # then
    assert result.pvalue < 0.001


def test_seeds_are_independent_so_two_experiments_do_not_split_alike():
    # given
    ids = _fixed_ids(20_000)

    # when: the same units in two 50/50 experiments
    first = [hash("experiment-a", unit_id, 2) < 0.5 for unit_id in ids]
    second = [hash("experiment-b", unit_id, 2) < 0.5 for unit_id in ids]

    # then: the 2x2 table shows no association
    table = [
        [
            sum(a and b for a, b in zip(first, second, strict=True)),
            sum(a and not b for a, b in zip(first, second, strict=True)),
        ],
        [
            sum(b and not a for a, b in zip(first, second, strict=True)),
            sum(not a and not b for a, b in zip(first, second, strict=True)),
        ],
    ]
    assert stats.chi2_contingency(table).pvalue > 0.001
