"""The decision service's settings, read once at the edge (`riskctl serve`) from
``RISKCTL_API_*`` variables and the command's options."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.secret import Secret
from flows.settings import SettingsError


@dataclass(frozen=True)
class ApiSettings:
    # Every decision endpoint asks for it, as `Authorization: Bearer ...` or `X-API-Key`.
    token: Secret = field(default_factory=lambda: Secret(""))
    host: str = "127.0.0.1"
    port: int = 8000
    policy_file: Path | None = None
    max_batch: int = 1000
    # Answers kept for `Idempotency-Key` retries, newest first out of the window last.
    idempotency_keys: int = 100_000
    # Decisions waiting for the audit table; when full, new decisions are refused (503) and
    # /readyz says not ready, rather than a decision going unrecorded.
    audit_buffer: int = 200_000
    audit_batch: int = 20_000
    audit_interval_s: float = 0.2
    # Longest wait between attempts to reach a store that is down.
    audit_retry_max_s: float = 5.0
    # How often models/CURRENT is checked for a new version.
    reload_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.token:
            raise SettingsError(
                "the decision service needs an API token: set RISKCTL_API_TOKEN (callers send it"
                " as `Authorization: Bearer TOKEN` or `X-API-Key: TOKEN`)"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0-65535, got {self.port}")
        for name in ("max_batch", "idempotency_keys", "audit_buffer", "audit_batch"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        if self.audit_buffer < self.max_batch:
            raise SettingsError("the audit buffer must hold at least one full batch")
        for name in ("audit_interval_s", "audit_retry_max_s", "reload_interval_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(f"{name} must be a positive number of seconds")


def _number(env: dict[str, str], name: str, default: float, kind: type) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {text.strip()!r}")
    return value


def api_settings(env: dict[str, str] | None = None, **overrides: object) -> ApiSettings:
    """Settings from ``RISKCTL_API_*`` variables, with the options given (not None) on top."""
    env = dict(os.environ if env is None else env)
    # A field's class attribute is its default (dataclasses keep plain defaults there).
    d = ApiSettings
    # Any: each value has its own field's type
    values: dict[str, Any] = {
        "token": Secret(env.get("RISKCTL_API_TOKEN", "")),
        "host": env.get("RISKCTL_API_HOST", d.host),
        "port": int(_number(env, "RISKCTL_API_PORT", d.port, int)),
        "policy_file": Path(env["RISKCTL_POLICY_FILE"]) if env.get("RISKCTL_POLICY_FILE") else None,
        "audit_buffer": int(_number(env, "RISKCTL_API_AUDIT_BUFFER", d.audit_buffer, int)),
        "reload_interval_s": _number(
            env, "RISKCTL_API_RELOAD_INTERVAL_S", d.reload_interval_s, float
        ),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ApiSettings(**values)
