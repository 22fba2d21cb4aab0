"""What the decision service reads and answers, as msgspec structs: the requests are the
stream's own LoanApplication, so one schema validates both, and the OpenAPI document is
generated from these same types."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from flows.decision.policy import Outcome
from flows.events import LoanApplication


class Reason(msgspec.Struct, frozen=True):
    code: str
    text: str


class RuleHit(msgspec.Struct, frozen=True):
    """A part of the policy that fired: a PD cut-off (``pd_refer``, ``pd_decline``) or a
    named hard rule."""

    name: str
    outcome: Outcome
    text: str


class DecisionAnswer(msgspec.Struct, frozen=True):
    decision_id: str
    event_id: str
    loan_id: str
    outcome: Outcome
    pd_lifetime: float  # the origination model's PD over the loan's life
    band: str
    rules_fired: list[RuleHit]
    reasons: list[Reason]
    model_version: str
    model_kind: str
    policy_version: str
    decided_at: datetime


class BatchRequest(msgspec.Struct, frozen=True):
    applications: list[LoanApplication]


class BatchAnswer(msgspec.Struct, frozen=True):
    decisions: list[DecisionAnswer]
    model_version: str
    policy_version: str


class ItemProblem(msgspec.Struct, frozen=True):
    index: int
    reason: str
    detail: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details; ``reason`` is the dead-letter reason for bad input."""

    type: str
    title: str
    status: int
    detail: str
    reason: str = ""
    errors: list[ItemProblem] = msgspec.field(default_factory=list)


class ModelAnswer(msgspec.Struct, frozen=True):
    version: str
    kind: str
    reasons_method: str
    test_auc: float | None
    loaded_at: datetime
    policy_version: str


_JSON = "application/json"
_PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str, media: str = _JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": _ref(name)}}}


def _problems(*codes: int) -> dict[str, Any]:
    titles = {
        401: "No or wrong API token",
        413: "Payload or batch too large",
        422: "Invalid application (the reason is a dead-letter reason)",
        503: "Not ready: no model yet, or the audit buffer is full",
    }
    return {str(c): {"description": titles[c], **_body("Problem", _PROBLEM)} for c in codes}


def openapi(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service, schemas from the structs above."""
    (request, decision, batch_req, batch, problem, model), components = (
        msgspec.json.schema_components(
            (LoanApplication, DecisionAnswer, BatchRequest, BatchAnswer, Problem, ModelAnswer),
            ref_template="#/components/schemas/{name}",
        )
    )
    del request, decision, batch_req, batch, problem, model  # all are in components
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
        "description": "A retry with the same key and body gets the same decision.",
    }
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "riskctl decision service", "version": version},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "paths": {
            "/v1/decisions": {
                "post": {
                    "summary": "Decide one loan application",
                    "security": secured,
                    "parameters": [idempotency],
                    "requestBody": {"required": True, **_body("LoanApplication")},
                    "responses": {
                        "200": {"description": "The decision", **_body("DecisionAnswer")},
                        **_problems(401, 413, 422, 503),
                    },
                }
            },
            "/v1/decisions:batch": {
                "post": {
                    "summary": "Decide up to 1,000 applications, scored in one model call",
                    "security": secured,
                    "parameters": [idempotency],
                    "requestBody": {"required": True, **_body("BatchRequest")},
                    "responses": {
                        "200": {"description": "Decisions, in order", **_body("BatchAnswer")},
                        **_problems(401, 413, 422, 503),
                    },
                }
            },
            "/v1/models/current": {
                "get": {
                    "summary": "The model answering now",
                    "security": secured,
                    "responses": {
                        "200": {"description": "The model", **_body("ModelAnswer")},
                        **_problems(401),
                    },
                }
            },
            "/healthz": {"get": {"summary": "The process answers", "responses": {"200": text}}},
            "/readyz": {
                "get": {
                    "summary": "Ready for decisions: a model loaded, room in the audit buffer",
                    "responses": {"200": text, "503": text},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": text}}},
        },
    }
