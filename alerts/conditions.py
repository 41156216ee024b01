"""Rule conditions: a tiny grammar, parsed, never evaluated as code.

    condition := clause ("and" clause)*
    clause    := FACT OP INTEGER          e.g.  days_until_expiry <= 10
    OP        := <= | < | >= | > | == | !=

Facts are the integers an alert carries in `Alert.facts`. A fact the alert does not carry (or
carries as anything but an integer, e.g. `days_until_expiry` of a token with no deadline) makes
its clause false, so a condition never fires on missing information.
"""

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

# The integer facts alerts carry; a condition may name only these, so a typo is refused in the
# admin instead of silently never matching.
FACTS: dict[str, str] = {
    "days_until_expiry": "whole days left until the reauthorize-by date, rounded up (0 once due)",
    "failure_count": "transient refresh failures in a row",
    "secret_age_days": "days since the client secret was set",
}

_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}
_CLAUSE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*([-+]?\d{1,9})\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    fact: str
    op: str
    value: int

    def matches(self, facts: Mapping[str, Any]) -> bool:
        actual = facts.get(self.fact)
        # bool is an int subclass; True <= 10 must not match.
        if not isinstance(actual, int) or isinstance(actual, bool):
            return False
        return _OPERATORS[self.op](actual, self.value)


def parse_condition(text: str) -> list[Clause]:
    """The clauses of `text` (none for a blank condition); ValidationError says what is wrong."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if match is None:
            raise ValidationError(
                f"Cannot read {part.strip()!r}: write <fact> <operator> <whole number>, e.g. "
                "'days_until_expiry <= 10', joined by 'and'. Operators: "
                + " ".join(_OPERATORS)
                + ".",
                code="syntax",
            )
        fact, op, value = match.groups()
        if fact not in FACTS:
            raise ValidationError(
                f"Unknown fact {fact!r}. Known facts: {', '.join(sorted(FACTS))}.",
                code="unknown_fact",
            )
        clauses.append(Clause(fact=fact, op=op, value=int(value)))
    return clauses


def validate_condition(text: str) -> None:
    """Raise ValidationError when `text` is not a valid condition (blank is valid)."""
    parse_condition(text)


def condition_matches(text: str, facts: Mapping[str, Any]) -> bool:
    """Whether every clause of `text` holds for `facts`; a blank condition always matches.

    Raises ValidationError for an invalid condition (one saved without the admin's form).
    """
    return all(clause.matches(facts) for clause in parse_condition(text))
