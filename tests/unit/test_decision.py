"""The decision policy, without a server: cut-offs, hard rules, their names, and policy files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.decision import OUTCOMES, HardRule, Policy, PolicyError, decide, decide_many, load_policy
from flows.decision.decide import PD_DECLINE, PD_REFER
from flows.decision.policy import DEFAULT_POLICY
from flows.features import FEATURE_NAMES

POLICY = Policy(
    version="test-1",
    approve_below=0.1,
    decline_from=0.2,
    rules=(
        HardRule(name="lti_cap", feature="loan_to_income", above=0.5, outcome="decline"),
        HardRule(name="delinquent", feature="accounts_delinquent", above=0.0, outcome="refer"),
    ),
)
CLEAN = {"loan_to_income": 0.2, "accounts_delinquent": 0.0}


@pytest.mark.parametrize(
    ("pd", "features", "outcome", "fired"),
    [
        (0.0, CLEAN, "approve", ()),
        (0.0999, CLEAN, "approve", ()),
        (0.1, CLEAN, "refer", (PD_REFER,)),  # the cut-off itself refers
        (0.1999, CLEAN, "refer", (PD_REFER,)),
        (0.2, CLEAN, "decline", (PD_DECLINE,)),
        (1.0, CLEAN, "decline", (PD_DECLINE,)),
        (0.01, {**CLEAN, "loan_to_income": 0.5}, "approve", ()),  # at the cap: allowed
        (0.01, {**CLEAN, "loan_to_income": 0.51}, "decline", ("lti_cap",)),
        (0.01, {**CLEAN, "accounts_delinquent": 1.0}, "refer", ("delinquent",)),
        # the worst outcome wins, and every rule that fired is named
        (0.15, {"loan_to_income": 3.0, "accounts_delinquent": 2.0}, "decline",
         (PD_REFER, "lti_cap", "delinquent")),
        (0.5, {**CLEAN, "accounts_delinquent": 1.0}, "decline", (PD_DECLINE, "delinquent")),
        # a missing value is not evidence: it fires nothing
        (0.01, {"loan_to_income": math.nan, "accounts_delinquent": math.nan}, "approve", ()),
    ],
)  # fmt: skip
def test_decision_matrix(
    pd: float, features: dict[str, float], outcome: str, fired: tuple[str, ...]
) -> None:
    decision = decide(pd, features, POLICY)
    assert decision.outcome == outcome
    assert decision.rules_fired == fired


def test_a_pd_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        decide(math.nan, CLEAN, POLICY)


_feature = st.one_of(st.floats(min_value=0, max_value=20), st.just(math.nan))


@given(
    low=st.floats(min_value=0, max_value=1),
    high=st.floats(min_value=0, max_value=1),
    lti=_feature,
    delinquent=_feature,
)
def test_decision_never_improves_as_pd_rises(
    low: float, high: float, lti: float, delinquent: float
) -> None:
    low, high = sorted((low, high))
    features = {"loan_to_income": lti, "accounts_delinquent": delinquent}
    for policy in (POLICY, DEFAULT_POLICY):
        worse = {**{r.feature: 0.0 for r in policy.rules}, **features}
        first = decide(low, worse, policy)
        second = decide(high, worse, policy)
        assert OUTCOMES.index(first.outcome) <= OUTCOMES.index(second.outcome)
        # the hard rules do not depend on the PD
        rules = {r.name for r in policy.rules}
        assert rules & set(first.rules_fired) == rules & set(second.rules_fired)


def test_a_batch_is_decided_row_by_row_from_the_feature_matrix() -> None:
    matrix = np.zeros((3, len(FEATURE_NAMES)))
    matrix[1, FEATURE_NAMES.index("loan_to_income")] = 0.9
    pd = np.array([0.05, 0.05, 0.25])
    decisions = decide_many(pd, matrix, POLICY)
    assert [d.outcome for d in decisions] == ["approve", "decline", "decline"]
    assert [d.rules_fired for d in decisions] == [(), ("lti_cap",), (PD_DECLINE,)]


TOML = """
version = "file-7"
approve_below = 0.05
decline_from = 0.3

[[rules]]
name = "lti_cap"
feature = "loan_to_income"
above = 0.4
outcome = "decline"
text = "Loan over 40% of income"
"""


def test_policy_files_load_as_toml_and_json(tmp_path: Path) -> None:
    toml_path = tmp_path / "policy.toml"
    toml_path.write_text(TOML)
    policy = load_policy(toml_path)
    assert policy.version == "file-7"
    assert policy.rules[0].text == "Loan over 40% of income"
    json_path = tmp_path / "policy.json"
    json_path.write_text(
        '{"version": "j-1", "approve_below": 0.1, "decline_from": 0.1, "rules": []}'
    )
    assert load_policy(json_path).decline_from == 0.1
    assert load_policy(None) is DEFAULT_POLICY


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.toml", 'version = "x"\napprove_below = 0.3\ndecline_from = 0.1\n', "must not exceed"),
        ("p.toml", 'version = "x"\napprove_below = 1.5\ndecline_from = 2\n', "approve_below"),
        ("p.toml", "version = \n", "does not parse"),
        ("p.json", "{", "does not parse"),
        ("p.yaml", "version: x", ".toml or .json"),
        ("p.toml", 'version = "x"\napprove_below = 0.1\ndecline_from = 0.2\n'
         '[[rules]]\nname = "r"\nfeature = "shoe_size"\nabove = 1\noutcome = "refer"\n',
         "unknown feature"),
        ("p.toml", 'version = "x"\napprove_below = 0.1\ndecline_from = 0.2\n'
         '[[rules]]\nname = "r"\nfeature = "term_60"\nabove = 0\noutcome = "approve"\n',
         "outcome"),
        ("p.toml", 'version = "x"\napprove_below = 0.1\ndecline_from = 0.2\n'
         '[[rules]]\nname = "r"\nfeature = "term_60"\nabove = 0\noutcome = "refer"\n'
         '[[rules]]\nname = "r"\nfeature = "term_60"\nabove = 1\noutcome = "refer"\n',
         "unique"),
    ],
)  # fmt: skip
def test_a_bad_policy_file_is_one_usage_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(path)
    assert caught.value.exit_code == 2


def test_a_missing_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")


@given(
    rows=st.lists(
        st.tuples(st.floats(min_value=0, max_value=1), _feature, _feature, _feature),
        min_size=1,
        max_size=30,
    )
)
def test_a_batch_decides_exactly_as_one_application_at_a_time(
    rows: list[tuple[float, float, float, float]],
) -> None:
    columns = ("loan_to_income", "accounts_delinquent", "debt_to_income")
    matrix = np.zeros((len(rows), len(FEATURE_NAMES)))
    for i, (_, *values) in enumerate(rows):
        for name, value in zip(columns, values, strict=True):
            matrix[i, FEATURE_NAMES.index(name)] = value
    pd = np.array([row[0] for row in rows])
    for policy in (POLICY, DEFAULT_POLICY):
        batch = decide_many(pd, matrix, policy)
        one_by_one = [
            decide(float(pd[i]), dict(zip(columns, rows[i][1:], strict=True)), policy)
            for i in range(len(rows))
        ]
        assert batch == one_by_one
