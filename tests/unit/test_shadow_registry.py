"""Which model shadow scoring runs: the registry's challenger of the kind, and the setting."""

from __future__ import annotations

import pytest

from flows.model_registry import StageChange, latest_challenger
from flows.settings import SettingsError, from_env


def _log(*steps: tuple[str, str, str]) -> list[StageChange]:
    return [
        StageChange(
            seq, f"2026-01-01T00:00:{seq:02d}Z", "test", kind, version, stage, None, "test", "test"
        )
        for seq, (kind, version, stage) in enumerate(steps, start=1)
    ]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ((), None),
        ((("applicant", "a1", "champion"),), None),
        ((("applicant", "a1", "champion"), ("applicant", "a2", "challenger")), "a2"),
        # the newest challenger of the kind, not another kind's
        (
            (
                ("applicant", "a2", "challenger"),
                ("applicant", "a3", "challenger"),
                ("priced", "p1", "challenger"),
            ),
            "a3",
        ),
        # a challenger promoted or retired since no longer shadows; an older one still does
        (
            (
                ("applicant", "a2", "challenger"),
                ("applicant", "a3", "challenger"),
                ("applicant", "a3", "champion"),
            ),
            "a2",
        ),
        ((("applicant", "a2", "challenger"), ("applicant", "a2", "retired")), None),
        # made a challenger again after being retired
        (
            (
                ("applicant", "a2", "challenger"),
                ("applicant", "a3", "challenger"),
                ("applicant", "a2", "retired"),
                ("applicant", "a2", "challenger"),
            ),
            "a2",
        ),
    ],
)
def test_the_shadow_model_is_the_newest_challenger_still_one(
    steps: tuple[tuple[str, str, str], ...], expected: str | None
) -> None:
    assert latest_challenger(_log(*steps), "applicant") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("1", True),
        (" TRUE ", True),
        ("yes", True),
        ("on", True),
    ],
)
def test_the_shadow_setting_reads_a_flag(text: str, expected: bool) -> None:
    assert from_env({"RISKCTL_SHADOW": text}).shadow is expected
    assert from_env({}).shadow is False


@pytest.mark.parametrize("text", ["2", "maybe", "challenger"])
def test_a_shadow_setting_that_is_no_flag_names_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match="RISKCTL_SHADOW must be 1 or 0"):
        from_env({"RISKCTL_SHADOW": text})
