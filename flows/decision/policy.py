"""The decision policy: PD cut-offs and named hard rules, versioned, from defaults or a file.

A policy file is TOML or JSON (by its suffix) of the same shape as :class:`Policy`::

    version = "2026-12-lending-v3"
    approve_below = 0.08      # PD under this: approve
    decline_from = 0.15       # PD at or above this: decline; in between: refer

    [[rules]]
    name = "loan_to_income_cap"
    feature = "loan_to_income"
    above = 0.5
    outcome = "decline"
    text = "Loan amount is more than half of annual income"

Rules read the model's own features (``flows/features.py``), so a rule and the score see the
same numbers. A missing value (NaN) never fires a rule: absence is not evidence.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from flows.errors import UsageError
from flows.features import FEATURE_NAMES

# Ordered from best to worst for the applicant; a decision is the worst outcome any part of
# the policy gives.
Outcome = Literal["approve", "refer", "decline"]
OUTCOMES: tuple[Outcome, ...] = ("approve", "refer", "decline")
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
RuleName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]


class PolicyError(UsageError):
    """A policy file riskctl cannot use (the user's input: exit code 2)."""


class HardRule(msgspec.Struct, frozen=True, kw_only=True):
    """Fires when ``feature`` is above ``above``; its outcome then applies whatever the PD."""

    name: RuleName
    feature: str
    above: float
    outcome: Literal["refer", "decline"]
    text: str = ""


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    version: Annotated[str, Meta(min_length=1, max_length=64)]
    approve_below: Probability
    decline_from: Probability
    rules: tuple[HardRule, ...] = ()

    def __post_init__(self) -> None:
        if not self.approve_below <= self.decline_from:
            raise PolicyError(
                f"policy {self.version}: approve_below ({self.approve_below}) must not exceed "
                f"decline_from ({self.decline_from})"
            )
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise PolicyError(f"policy {self.version}: rule names must be unique")
        for rule in self.rules:
            if rule.feature not in FEATURE_NAMES:
                raise PolicyError(
                    f"policy {self.version}: rule {rule.name} reads unknown feature "
                    f"{rule.feature!r}; known: {', '.join(FEATURE_NAMES)}"
                )


# The cut-offs follow the default risk bands: up to medium approve, high refer, very high
# decline. The hard rules are the lending limits a scorecard alone does not enforce.
DEFAULT_POLICY = Policy(
    version="default-1",
    approve_below=0.08,
    decline_from=0.15,
    rules=(
        HardRule(
            name="loan_to_income_cap",
            feature="loan_to_income",
            above=0.5,
            outcome="decline",
            text="Loan amount is more than half of annual income (or no income stated)",
        ),
        HardRule(
            name="debt_to_income_cap",
            feature="debt_to_income",
            above=1.5,
            outcome="refer",
            text="Installment debt with this loan is more than 1.5 times annual income",
        ),
        HardRule(
            name="currently_delinquent",
            feature="accounts_delinquent",
            above=0.0,
            outcome="refer",
            text="An account is delinquent now",
        ),
    ),
)


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (TOML or JSON), or the default one when no path is given."""
    if path is None:
        return DEFAULT_POLICY
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            document = tomllib.loads(raw.decode("utf-8"))
        elif path.suffix == ".json":
            document = json.loads(raw)
        else:
            raise PolicyError(f"policy file {path} must end in .toml or .json")
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSON errors alike
        raise PolicyError(f"policy file {path} does not parse: {type(exc).__name__}") from None
    try:
        return msgspec.convert(document, Policy)
    except msgspec.ValidationError as exc:
        # The message names the field; it is shown to the user, never parsed.
        raise PolicyError(f"policy file {path}: {exc}") from None
