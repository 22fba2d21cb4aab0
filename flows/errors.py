"""The root of every error a user can cause or fix; the CLI prints these as one line."""


class RiskctlError(Exception):
    """Something riskctl cannot do as asked, with a message that says why."""
