"""Validate, score and decide applications for the HTTP service. No HTTP here: bytes in,
answers and audit rows out, with the stream's own decoder, features and model."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import datetime

import msgspec

from flows.api.schema import DecisionAnswer, ItemProblem, Reason, RuleHit
from flows.decision import Policy, decide_many
from flows.decision.decide import PD_DECLINE, PD_REFER
from flows.events import LoanApplication
from flows.model import ScoringModel
from flows.risk import band_names
from flows.scoring import feature_matrix
from flows.settings import Settings
from flows.validation import DeadLetter, decode_application, utf8_problem


class BatchTooLarge(Exception):
    """More applications in one batch than the service takes."""


@dataclass(frozen=True, slots=True)
class Decided:
    """One decision as answered, with what the audit table keeps of it."""

    answer: DecisionAnswer
    request: bytes


_BATCH = msgspec.json.Decoder(dict[str, list[msgspec.Raw]])


def validate(payloads: list[bytes], max_bytes: int) -> list[LoanApplication] | list[ItemProblem]:
    """The applications, or every problem found (index, dead-letter reason, detail)."""
    apps: list[LoanApplication] = []
    problems: list[ItemProblem] = []
    for i, payload in enumerate(payloads):
        result = decode_application(payload, "api", max_bytes)
        if type(result) is DeadLetter:
            problems.append(ItemProblem(i, result.reason, result.detail))
        else:
            apps.append(result)
    return problems or apps


def split_batch(body: bytes, max_items: int) -> list[bytes] | ItemProblem:
    """The raw bytes of each application of a batch body ``{"applications": [...]}``, so that
    each is validated by the same code as one event; or the problem with the body itself."""
    bad_bytes = utf8_problem(body)
    if bad_bytes is not None:
        return ItemProblem(-1, "invalid_utf8", bad_bytes)
    try:
        document = _BATCH.decode(body)
    except msgspec.ValidationError:  # a subclass of DecodeError: JSON, but not a batch
        return ItemProblem(-1, "wrong_type", 'expected {"applications": [ ... ]}')
    except msgspec.DecodeError:
        return ItemProblem(-1, "malformed_json", "the body is not JSON")
    if set(document) != {"applications"}:
        return ItemProblem(-1, "missing_field", "expected exactly the field `$.applications`")
    items = document["applications"]
    if len(items) > max_items:
        raise BatchTooLarge(f"{len(items)} applications in one batch, at most {max_items}")
    return [bytes(item) for item in items]


class Decider:
    """Scores and decides whole lists of applications with one model call."""

    def __init__(self, policy: Policy, settings: Settings) -> None:
        self.policy = policy
        self._bands = settings.bands
        self._top = settings.reason_codes
        self._hits = {
            PD_REFER: RuleHit(PD_REFER, "refer", f"PD at or above {policy.approve_below}"),
            PD_DECLINE: RuleHit(PD_DECLINE, "decline", f"PD at or above {policy.decline_from}"),
        }
        # Decision ids: random per process, then counted (a uuid4 each cost more than the
        # decision's rules); 32 hex digits like a uuid, unique across restarts and replicas.
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count()
        for rule in policy.rules:
            self._hits[rule.name] = RuleHit(rule.name, rule.outcome, rule.text or rule.name)

    def decide(
        self, apps: list[LoanApplication], model: ScoringModel, decided_at: datetime
    ) -> list[DecisionAnswer]:
        matrix = feature_matrix(apps)
        pd, codes, texts = model.explain_rows(matrix, self._top)
        bands = band_names(pd, self._bands)
        decisions = decide_many(pd, matrix, self.policy)
        version, kind, policy = model.version, model.kind, self.policy.version
        prefix, counter = self._id_prefix, self._ids
        hits = self._hits
        answers = []
        for i, (app, score, decision, code_list, text_list) in enumerate(
            zip(apps, pd.tolist(), decisions, codes, texts, strict=True)
        ):
            answers.append(
                DecisionAnswer(
                    decision_id=f"{prefix}{next(counter):016x}",
                    event_id=app.event_id,
                    loan_id=app.loan_id,
                    outcome=decision.outcome,
                    pd_lifetime=score,
                    band=bands[i],
                    rules_fired=[hits[name] for name in decision.rules_fired],
                    reasons=[Reason(c, t) for c, t in zip(code_list, text_list, strict=True)],
                    model_version=version,
                    model_kind=kind,
                    policy_version=policy,
                    decided_at=decided_at,
                )
            )
        return answers
