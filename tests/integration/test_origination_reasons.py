"""What the origination models say about the demo's loans and about thin applications.

Two failure classes of a scorecard that a model-risk reviewer would reject, checked on the
real models over real loans: a reason cited for nearly everyone (a characteristic whose
reference attribute almost nobody holds) and an application with only the required fields
scored as the riskiest applicant on every missing field at once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pytest

from flows.events import LoanApplication
from flows.model import load_model
from flows.scoring import feature_matrix
from training.dataset import LendingClub
from training.reasons import NOT_SUPPLIED
from training.replay import ReplayPlan, application_events

# No reason code may be among a loan's top three for more than this share of the demo's loans.
MAX_CITED_SHARE = 0.6
# What an application must carry; everything else is optional (the event schema).
REQUIRED = frozenset(
    {"schema_version", "event_type", "event_id", "loan_id", "borrower_id", "event_time",
     "funded_amnt", "term_months", "addr_state", "verification_status", "annual_inc"}
)  # fmt: skip


@pytest.fixture(scope="module")
def demo_loans(lending_club: LendingClub) -> list[LoanApplication]:
    """The 10,000 loans `riskctl demo` replays, decoded as the flow decodes them."""
    decoder = msgspec.json.Decoder(LoanApplication)
    return [decoder.decode(p) for p in application_events(lending_club, ReplayPlan(10_000))]


@pytest.mark.parametrize("kind", ["applicant", "priced"])
def test_no_reason_is_cited_for_nearly_everyone(
    kind: str, trained_home: Path, demo_loans: list[LoanApplication]
) -> None:
    model = load_model(trained_home / "models", kind=kind)
    _, codes, _ = model.explain(feature_matrix(demo_loans), 3)
    rows = codes.to_pylist()
    cited = Counter(code for row in rows for code in row)
    shares = {code: n / len(rows) for code, n in cited.items()}
    assert max(shares.values()) <= MAX_CITED_SHARE, shares
    # the reasons spread over the card: several characteristics are each cited for many loans
    assert sum(share >= 0.1 for share in shares.values()) >= 4, shares
    # "not supplied" is cited only where the demo's loans really lack the field (employment)
    assert {c for c in cited if c.endswith(NOT_SUPPLIED)} <= {f"employment_years{NOT_SUPPLIED}"}


@pytest.mark.parametrize("kind", ["applicant", "priced"])
def test_a_thin_application_scores_near_the_portfolio(
    kind: str, trained_home: Path, demo_loans: list[LoanApplication],
    training_result: object,
) -> None:
    """An application with only the required fields: every bureau field's missing bin has
    little or no training evidence, so it scores near the portfolio's odds, and the PD stays
    within a factor of two of the training bad rate on average (within four for any loan)."""
    model = load_model(trained_home / "models", kind=kind)
    optional = [f for f in LoanApplication.__struct_fields__ if f not in REQUIRED]
    loans = demo_loans[:2000]
    thin = [msgspec.structs.replace(a, **dict.fromkeys(optional)) for a in loans]
    bad_rate = float(training_result.y_train.mean())  # type: ignore[attr-defined]
    pd = model.predict_pd(feature_matrix(thin))
    assert 0.5 * bad_rate <= pd.mean() <= 2.0 * bad_rate, pd.mean()
    assert (pd >= 0.25 * bad_rate).all() and (pd <= 4.0 * bad_rate).all(), (pd.min(), pd.max())
    # leaving the bureau out moves the portfolio's mean PD less than the full data spreads it
    full = model.predict_pd(feature_matrix(loans))
    assert np.std(pd) < np.std(full)
