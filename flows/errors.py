"""The root of every error a user can cause or fix; the CLI prints these as one line.

The exit code belongs to the error's type, so whether a failure is the user's input (2) or
something else (1) is decided where the error is raised, never by reading a message.
"""

from __future__ import annotations

from typing import ClassVar


class RiskctlError(Exception):
    """Something riskctl cannot do as asked, with a message that says why."""

    exit_code: ClassVar[int] = 1


class UsageError(RiskctlError):
    """The input was wrong (an option, a setting, a path, a URL); exits with code 2."""

    exit_code: ClassVar[int] = 2
