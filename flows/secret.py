"""A value that is never shown: passwords and store URLs that may carry one."""

from __future__ import annotations

import hmac


class Secret:
    """repr() and str() show ``***``; :meth:`reveal` hands the value to the one call that needs
    it. Settings hold secrets this way so that printing, logging or a traceback's locals of
    the object carrying them shows no password."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Worker processes receive settings pickled; the value must survive that.
        return (Secret, (self._value,))


def reveal(value: Secret | str | None) -> str | None:
    """The plain value of a secret (or of a string that was never wrapped)."""
    return value.reveal() if isinstance(value, Secret) else value
