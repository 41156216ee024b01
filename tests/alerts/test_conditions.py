"""Rule conditions: `<fact> <op> <int>` joined by `and`; parsed, never evaluated as code."""

import pytest
from django.core.exceptions import ValidationError

from alerts.conditions import condition_matches, validate_condition


@pytest.mark.parametrize("condition", ["", "   "])
def test_it_matches_every_alert_with_a_blank_condition(condition):
    assert condition_matches(condition, {})
    validate_condition(condition)


@pytest.mark.parametrize(("days", "expected"), [(11, False), (10, True), (3, True), (0, True)])
def test_it_reads_the_seed_rule(days, expected):
    assert condition_matches("days_until_expiry <= 10", {"days_until_expiry": days}) is expected


@pytest.mark.parametrize(
    ("op", "matching", "not_matching"),
    [("<=", 5, 6), ("<", 4, 5), (">=", 5, 4), (">", 6, 5), ("==", 5, 4), ("!=", 4, 5)],
)
def test_it_knows_every_operator(op, matching, not_matching):
    condition = f"days_until_expiry {op} 5"
    assert condition_matches(condition, {"days_until_expiry": matching})
    assert not condition_matches(condition, {"days_until_expiry": not_matching})


def test_it_needs_every_clause_joined_by_and():
    condition = "days_until_expiry <= 10 and failure_count >= 2"
    assert condition_matches(condition, {"days_until_expiry": 4, "failure_count": 2})
    assert not condition_matches(condition, {"days_until_expiry": 4, "failure_count": 1})
    assert condition_matches(
        "days_until_expiry<=10 AND days_until_expiry>-1", {"days_until_expiry": 0}
    )


@pytest.mark.parametrize("value", [None, "3", 3.0, True])
def test_it_never_matches_a_missing_or_non_integer_fact(value):
    assert not condition_matches("days_until_expiry <= 10", {"days_until_expiry": value})
    assert not condition_matches("days_until_expiry <= 10", {})
    assert not condition_matches("days_until_expiry != 10", {})


def test_it_accepts_negative_numbers():
    assert condition_matches("days_until_expiry > -1", {"days_until_expiry": 0})


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("days_until_expiry <=", "Cannot read 'days_until_expiry <='"),
        ("days_until_expiry => 10", "write <fact> <operator> <whole number>"),
        ("days_until_expiry <= 1.5", "Cannot read"),
        ("days_until_expiry <= 10 or failure_count > 1", "Cannot read"),
        ("days_until_expiry <= 10 and", "Cannot read"),
        ("__import__('os').system('true')", "Cannot read"),
        ("days_until_expiry <= 10; import os", "Cannot read"),
        ("days_until_expiy <= 10", "Unknown fact 'days_until_expiy'. Known facts: "),
    ],
)
def test_it_refuses_bad_input_with_a_clear_message(condition, message):
    with pytest.raises(ValidationError) as refused:
        validate_condition(condition)
    assert message in refused.value.messages[0]
    with pytest.raises(ValidationError):
        condition_matches(condition, {"days_until_expiry": 1})


def test_it_names_the_known_facts_when_one_is_unknown():
    with pytest.raises(ValidationError) as refused:
        validate_condition("age > 1")
    assert "days_until_expiry" in refused.value.messages[0]
