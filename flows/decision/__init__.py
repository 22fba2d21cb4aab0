"""Credit decisions from a PD and an application's features under a versioned policy."""

from flows.decision.decide import Decision, decide, decide_many
from flows.decision.policy import OUTCOMES, HardRule, Policy, PolicyError, load_policy

__all__ = [
    "OUTCOMES",
    "Decision",
    "HardRule",
    "Policy",
    "PolicyError",
    "decide",
    "decide_many",
    "load_policy",
]
