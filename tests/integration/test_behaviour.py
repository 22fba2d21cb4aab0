"""The behavioural (live PD) model: labels, the out-of-time split, leakage, export and CLI.

The model-level tests read the one full training run the fixtures share (every real loan,
default seed), so the numbers they check are the reported ones.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnx
import pytest
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

import training.behaviour
import training.onnx_export as export_module
from cli.main import app
from flows.events import LoanApplication, LoanRepayment
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES, behaviour_features
from flows.loan.schedule import add_months, amortization_schedule, due_date
from flows.loan.state import apply_repayment, open_loan, pd_logit
from flows.model import ScoringModel, load_model
from flows.model_cards import BEHAVIOUR_DIR, current_version
from tests.unit.test_loan_state import APP, ORIGINATED
from training.behaviour import (
    HORIZON_MONTHS,
    MAX_MONTHS,
    BehaviourError,
    BehaviourResult,
    applications,
    loan_events,
    observe_loan,
    origination_pds,
    split_date,
    stream_order,
)
from training.behaviour_export import export_behaviour
from training.dataset import LendingClub, loan_id_for
from training.onnx_export import ParityError
from training.publish import ExportReport
from training.repayments import bad_rows, calibration_for

runner = CliRunner()

# The hand-checkable loan of the state tests: 10,000 at 12 % over 36 months, due on the 15th.


def repayment(
    app: LoanApplication,
    n: int,
    paid: float,
    *,
    balance: float,
    when: date | None = None,
) -> LoanRepayment:
    """Installment ``n`` of ``app``: paid on its due date, or missed (``paid == 0``) and
    reported 30 days after it, as the derived histories report misses."""
    due = due_date(app.event_time.date(), n)
    missed = paid == 0.0
    happened = when or (due + timedelta(days=30) if missed else due)
    schedule = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    return LoanRepayment(
        schema_version=1,
        event_type="loan_repayment",
        event_id=f"t-{app.loan_id}-{n}",
        loan_id=app.loan_id,
        event_time=datetime.combine(happened, app.event_time.timetz()),
        installment_number=n,
        due_date=due,
        amount_due=schedule[n - 1][1],
        amount_paid=paid,
        payment_date=None if missed else happened,
        outstanding_balance=balance,
    )


def test_label_is_a_90_day_default_within_the_horizon_of_the_observation() -> None:
    schedule = amortization_schedule(10_000.0, 12.0, 36)
    paid = [repayment(APP, n, 332.14, balance=schedule[n - 1][4]) for n in range(1, 7)]
    # installments 7-10 missed, each reported 30 days after falling due; then charged off
    missed = [repayment(APP, n, 0.0, balance=schedule[5][4]) for n in range(7, 11)]
    # a 6-month window shows where the window ends; the model's is 12 months
    outcome = observe_loan(APP, 0.05, [*missed, *paid], horizon_months=6)

    # installment 7 (due 2024-08-15) is the oldest unpaid: 90 days past due on 2024-11-13
    assert outcome.default_date == date(2024, 11, 13)
    dated = [(o.as_of, o.label) for o in outcome.observations]
    assert dated == [
        (date(2024, 2, 15), 0),
        (date(2024, 3, 15), 0),
        (date(2024, 4, 15), 0),  # its window ends 2024-10-15, before the default
        (date(2024, 5, 15), 1),  # window to 2024-11-15 takes in 2024-11-13
        (date(2024, 6, 15), 1),
        (date(2024, 7, 15), 1),
        (date(2024, 9, 14), 1),  # installment 7 reported missed
        (date(2024, 10, 15), 1),  # installment 8
    ]
    # installments 9 and 10 are reported on 2024-11-14 and 2024-12-15: already in default
    assert outcome.excluded == 2
    twelve = observe_loan(APP, 0.05, [*missed, *paid])
    assert HORIZON_MONTHS == 12
    assert [o.label for o in twelve.observations] == [1] * 8


def test_a_loan_that_keeps_paying_is_never_labelled_default() -> None:
    schedule = amortization_schedule(10_000.0, 12.0, 36)
    # 12 observed installments and a 12-month window after the last: 25 installments
    events = [repayment(APP, n, 332.14, balance=schedule[n - 1][4]) for n in range(1, 26)]
    outcome = observe_loan(APP, 0.05, events, months=12)
    assert outcome.default_date is None
    assert [o.label for o in outcome.observations] == [0] * 12
    assert outcome.excluded == 0


def test_a_label_window_past_the_known_history_is_refused() -> None:
    schedule = amortization_schedule(10_000.0, 12.0, 36)
    events = [repayment(APP, n, 332.14, balance=schedule[n - 1][4]) for n in range(1, 13)]
    with pytest.raises(BehaviourError, match="label window ends"):
        observe_loan(APP, 0.05, events, months=12, known_until=due_date(ORIGINATED.date(), 13))


def _missed_instead(event: LoanRepayment) -> LoanRepayment:
    """The same event (same time, so the same stream position) with the opposite outcome."""
    if event.amount_paid > 0.0:
        return msgspec.structs.replace(event, amount_paid=0.0, payment_date=None)
    return msgspec.structs.replace(
        event, amount_paid=event.amount_due, payment_date=event.event_time.date()
    )


def test_features_never_see_events_after_the_observation(
    lending_club: LendingClub, model: ScoringModel
) -> None:
    apps = applications(lending_club, 42)
    bad = {loan_id_for(r) for r in bad_rows(lending_club)}
    # every real bad loan in the first 3,000 of the plan, and as many good ones
    picked = [a for a in apps[:3000] if a.loan_id in bad]
    picked += [a for a in apps[:3000] if a.loan_id not in bad][: len(picked)]
    pds = origination_pds(model, picked)
    calibration = calibration_for(lending_club)
    compared = labels_moved = 0
    for app_, pd in zip(picked, pds, strict=True):
        events, known = loan_events(app_, app_.loan_id in bad, 42, 12, calibration)
        original = observe_loan(app_, float(pd), events, known_until=known)
        if len(original.observations) < 4:
            continue
        cut = original.observations[len(original.observations) // 2]
        # every event dated after the observation gets the opposite outcome
        changed = [e if e.event_time.date() <= cut.as_of else _missed_instead(e) for e in events]
        perturbed = observe_loan(app_, float(pd), changed, known_until=known)
        after = {o.event_id: o for o in perturbed.observations}
        for o in original.observations:
            if o.as_of > cut.as_of:
                break
            seen = after[o.event_id].features
            assert all(
                x == y or (math.isnan(x) and math.isnan(y))
                for x, y in zip(o.features, seen, strict=True)
            ), (app_.loan_id, o.event_id)
            compared += 1
            labels_moved += o.label != after[o.event_id].label
    assert compared > 1500
    # the perturbation did reach the outcome: the labels, never the features, moved
    assert labels_moved > 100, labels_moved


def test_stream_order_is_event_time_then_installment() -> None:
    schedule = amortization_schedule(10_000.0, 12.0, 36)
    # installment 1 (due 2024-02-15) is reported missed on 2024-03-16, a day after installment 2
    # is paid; installment 3's miss is reported on 2024-05-15, the day installment 4 is paid
    events = [
        repayment(APP, 1, 0.0, balance=10_000.0),
        repayment(APP, 2, 332.14, balance=schedule[0][4]),
        repayment(APP, 3, 0.0, balance=schedule[0][4]),
        repayment(APP, 4, 332.14, balance=schedule[1][4]),
    ]
    assert events[2].event_time == events[3].event_time
    ordered = stream_order(reversed(events))
    assert [e.installment_number for e in ordered] == [2, 1, 3, 4]


def test_split_date_is_the_first_month_with_the_train_share() -> None:
    dates = np.array(
        ["2016-01-10"] * 3 + ["2016-02-03"] * 4 + ["2016-03-30"] * 2 + ["2016-04-01"],
        dtype="datetime64[D]",
    )
    assert split_date(dates, 0.7) == date(2016, 3, 1)  # 7 of 10 dated before March
    assert split_date(dates, 0.71) == date(2016, 4, 1)
    with pytest.raises(BehaviourError, match="single month"):
        split_date(dates[:3], 0.5)


def test_out_of_time_split_is_by_date(behaviour_result: BehaviourResult) -> None:
    r = behaviour_result
    last_train, first_test = r.train_dates.max(), r.test_dates.min()
    assert last_train < first_test
    assert r.split.day == 1 and first_test >= np.datetime64(r.split)
    # every training label window closes before the test months begin
    assert add_months(last_train.astype(date), HORIZON_MONTHS) < r.split
    assert r.train_before == add_months(r.split, -HORIZON_MONTHS)
    data = r.data
    assert len(r.y_train) == data["train_rows"] == len(r.train_dates)
    assert len(r.y_test) == data["test_rows"] == len(r.test_dates)
    assert data["train_rows"] + data["embargo_rows"] + data["test_rows"] == data["observations"]
    # test months are later calendar months, and there are enough of them to measure on
    assert (r.test_dates.astype("datetime64[M]") > r.train_dates.max()).all()
    assert data["test_bads"] > 200 and data["train_bads"] > 200
    assert data["loans"] == 9857


def test_behavioural_model_beats_origination_on_the_test_months(
    behaviour_result: BehaviourResult,
) -> None:
    r = behaviour_result
    behavioural, origination = r.test, r.origination_test
    # the same observations, labels and rows for both scores
    assert behavioural["rows"] == origination["rows"] == len(r.y_test)
    assert behavioural["bad_rate"] == origination["bad_rate"]
    # the origination PDs compared are the ones the loans were opened with
    np.testing.assert_allclose(
        r.x_test[:, BEHAVIOUR_FEATURE_NAMES.index("origination_pd_logit")],
        [pd_logit(p) for p in r.test_origination_pd],
        rtol=1e-12,
    )
    report = f"behavioural AUC {behavioural['auc']:.4f}, origination AUC {origination['auc']:.4f}"
    assert behavioural["auc"] > origination["auc"] + 0.05, report
    assert behavioural["ks"] > origination["ks"], report
    assert behavioural["brier"] < origination["brier"], report
    # a real baseline, not a broken one: the applicant model (the default origination kind)
    # scores without LendingClub's grade, so it ranks less sharply than a priced model
    assert origination["auc"] > 0.6, report


def test_onnx_model_matches_sklearn_and_loads_as_the_live_model(
    behaviour_model_home: Path,
    behaviour_export_report: ExportReport,
    behaviour_result: BehaviourResult,
) -> None:
    registry = behaviour_model_home / "models" / BEHAVIOUR_DIR
    assert current_version(registry) == behaviour_export_report.version
    live = load_model(registry, feature_names=BEHAVIOUR_FEATURE_NAMES)
    assert live.version == behaviour_export_report.version
    onnx_pd = live.predict_pd(behaviour_result.x_test)
    sklearn_pd = behaviour_result.model.predict_proba(behaviour_result.x_test)[:, 1]
    assert np.abs(onnx_pd - sklearn_pd).max() <= 1e-5
    assert behaviour_export_report.parity_max_diff <= 1e-5
    # the origination registry one level up is untouched: its current model is still there
    assert load_model(behaviour_model_home / "models").version != live.version


def test_linear_reason_terms_rebuild_the_logit(
    behaviour_model_home: Path, behaviour_result: BehaviourResult
) -> None:
    registry = behaviour_model_home / "models" / BEHAVIOUR_DIR
    live = load_model(registry, feature_names=BEHAVIOUR_FEATURE_NAMES)
    x = behaviour_result.x_test[:5000]
    logit = live.contributions(x).sum(axis=1) + live.card["reasons"]["intercept"]
    # the pipeline's own logit: log(p / (1 - p)) loses digits where p rounds towards 1
    np.testing.assert_allclose(logit, behaviour_result.model.decision_function(x), atol=1e-8)
    risky = x[live.predict_pd(x) > 0.5]
    reasons = live.reason_codes(risky, 3).to_pylist()
    assert risky.size and all(reasons)
    assert {name for r in reasons for name in r} <= set(BEHAVIOUR_FEATURE_NAMES)


def test_card_has_the_contract_fields(
    behaviour_export_report: ExportReport,
    behaviour_result: BehaviourResult,
    trained_home: Path,
    lending_club: LendingClub,
) -> None:
    card = json.loads((behaviour_export_report.path / "card.json").read_text())
    assert card["version"] == behaviour_export_report.path.name
    assert card["version"].endswith("-behaviour-lr")
    assert card["kind"] == "behaviour"
    assert card["model_type"] == "sign_constrained_logistic_regression"
    assert card["params"]["feature_signs"]["days_past_due"] == 1
    assert card["feature_names"] == list(BEHAVIOUR_FEATURE_NAMES)
    assert card["onnx"] == card["onnx"] | {
        "input": "features",
        "output": "probabilities",
        "positive_class_index": 1,
    }
    reasons = card["reasons"]
    assert reasons["method"] == "linear"
    for key in ("fill", "center", "scale", "coef"):
        assert len(reasons[key]) == len(BEHAVIOUR_FEATURE_NAMES)
    test, origination = card["metrics"]["test"], card["metrics"]["origination_test"]
    for m in (test, origination):
        assert set(m) >= {"auc", "ks", "gini", "brier"}
        assert m["gini"] == pytest.approx(2 * m["auc"] - 1)
    assert test["auc"] == behaviour_result.test["auc"]
    calibration = card["metrics"]["calibration"]
    assert len(calibration) == 10
    assert sum(r["count"] for r in calibration) == len(behaviour_result.y_test)
    assert sum(r["bads"] for r in calibration) == behaviour_result.y_test.sum()
    assert card["label"]["horizon_months"] == HORIZON_MONTHS
    assert card["label"]["default_days_past_due"] == 90
    assert card["split"]["test_from"] == behaviour_result.split.isoformat()
    assert card["split"]["train_dates"]["last"] < card["split"]["test_dates"]["first"]
    assert card["origination_model"]["version"] == current_version(trained_home / "models")
    assert card["data"]["sha256"] == lending_club.sha256
    assert card["parity"]["max_abs_diff"] <= card["parity"]["tolerance"] == 1e-5
    assert card["parity"]["rows"] == len(behaviour_result.y_test)
    for name in (*BEHAVIOUR_FEATURE_NAMES, "pd"):
        ref = card["reference"][name]
        assert ref["edges"][0] == -math.inf and ref["edges"][-1] == math.inf
        assert sum(ref["proportions"]) == pytest.approx(1.0)
    markdown = (behaviour_export_report.path / "card.md").read_text()
    for text in (
        card["version"],
        card["split"]["test_from"],
        f"{test['auc']:.4f}",
        f"{origination['auc']:.4f}",
        "missed_last_3",
        card["label"]["definition"],
    ):
        assert text in markdown


def test_export_refuses_a_parity_break(
    behaviour_result: BehaviourResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_convert = export_module.convert

    def convert_drifted(model: Pipeline, n_features: int) -> onnx.ModelProto:
        # a shifted scaler centre changes every PD of the graph, as a converter bug would (the
        # imputer's fills would not: every observation follows a recorded installment, so the
        # test rows have no missing ratio)
        drifted = copy.deepcopy(model)
        drifted.named_steps["scale"].mean_ = drifted.named_steps["scale"].mean_ + 0.5
        return real_convert(drifted, n_features)

    monkeypatch.setattr(export_module, "convert", convert_drifted)
    with pytest.raises(ParityError, match="nothing was exported"):
        export_behaviour(behaviour_result, tmp_path / "models")
    registry = tmp_path / "models" / BEHAVIOUR_DIR
    assert current_version(registry) is None
    assert not registry.exists() or not any(registry.iterdir())


def _missed_then_cured(app_: LoanApplication, pd: float) -> np.ndarray:
    """Behaviour features after each event of: 3 installments on time, 2 missed, a payment of
    both arrears and the current installment (the cure), then 14 more on time."""
    schedule = amortization_schedule(app_.funded_amnt, app_.int_rate, app_.term_months)
    events = [repayment(app_, n, schedule[n - 1][1], balance=schedule[n - 1][4]) for n in (1, 2, 3)]
    events += [repayment(app_, n, 0.0, balance=schedule[2][4]) for n in (4, 5)]
    cure = round(sum(schedule[n - 1][1] for n in (4, 5, 6)), 2)
    # ten days after installment 6 falls due: after the second miss is reported in any month
    cured_on = due_date(app_.event_time.date(), 6) + timedelta(days=10)
    events.append(repayment(app_, 6, cure, balance=schedule[5][4], when=cured_on))
    events += [
        repayment(app_, n, schedule[n - 1][1], balance=schedule[n - 1][4]) for n in range(7, 21)
    ]
    state = open_loan(app_, pd)
    rows = []
    for event in stream_order(events):
        state = apply_repayment(state, event)
        rows.append(behaviour_features(state, event.event_time.date()))
    return np.array(rows)


def test_live_pd_rises_after_misses_and_falls_after_the_cure(
    behaviour_model_home: Path, lending_club: LendingClub, model: ScoringModel
) -> None:
    live = load_model(
        behaviour_model_home / "models" / BEHAVIOUR_DIR, feature_names=BEHAVIOUR_FEATURE_NAMES
    )
    apps = applications(lending_club, 42)[:40]  # real loans, real origination PDs
    paths = [
        _missed_then_cured(a, float(pd))
        for a, pd in zip(apps, origination_pds(model, apps), strict=True)
    ]
    pd = np.array([live.predict_pd(x) for x in paths])  # the exported ONNX graph
    intercept = live.card["reasons"]["intercept"]
    logit = np.array([live.contributions(x).sum(axis=1) + intercept for x in paths])
    np.testing.assert_allclose(pd, 1.0 / (1.0 + np.exp(-logit)), atol=1e-5)

    on_time, first_miss, second_miss, cure = (pd[:, k] for k in (2, 3, 4, 5))
    assert (first_miss > 5 * on_time).all()
    assert (second_miss > first_miss).all()
    assert (cure < second_miss).all()
    # every on-time installment after the cure lowers it, and no cured loan sits near 1
    assert (np.diff(pd[:, 5:], axis=1) < 0).all()
    assert (pd[:, 5:] < 0.99).all()
    # the misses leave the three-installment window, then the on-time ratio recovers (cured bad
    # loans miss again at 23 % a month, so three on-time installments take it to about half)
    assert (pd[:, 8] < 0.6 * cure).all()
    assert (pd[:, -1] < 2 * on_time).all()


# --- CLI -------------------------------------------------------------------------------------


def _home_with_origination_model(trained_home: Path, home: Path) -> Path:
    """A home of this test's own holding a copy of the shared origination model."""
    models = trained_home / "models"
    version = current_version(models)
    assert version is not None
    shutil.copytree(models / version, home / "models" / version)
    shutil.copy(models / "CURRENT", home / "models" / "CURRENT")
    return home


def test_cli_trains_exports_and_reports_both_models(
    trained_home: Path,
    behaviour_result: BehaviourResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The full training runs once in the shared fixture; here the command's wiring matters.
    calls: list[dict[str, Any]] = []

    def fake_train(data: LendingClub, origination: ScoringModel, **kwargs: Any) -> BehaviourResult:
        calls.append({"origination": origination.version, **kwargs})
        return behaviour_result

    # The command imports training when it runs, so the fake replaces it where it is defined.
    monkeypatch.setattr(training.behaviour, "train_behaviour", fake_train)
    home = _home_with_origination_model(trained_home, tmp_path / "home")
    result = runner.invoke(
        app, ["train-behaviour", "--home", str(home), "--seed", "7", "--months", "9"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [{"origination": current_version(home / "models"), "seed": 7, "months": 9}]
    out = result.stdout
    r = behaviour_result
    for text in (
        "behavioural",
        "origination",
        f"{r.test['auc']:.4f}",
        f"{r.origination_test['auc']:.4f}",
        f"{r.test['brier']:.4f}",
        f"{r.origination_test['ks']:.4f}",
        str(r.split),
        str(r.data["train_rows"]),
        str(r.data["test_rows"]),
    ):
        assert text in out, text
    live = load_model(home / "models" / BEHAVIOUR_DIR, feature_names=BEHAVIOUR_FEATURE_NAMES)
    assert live.version in out


def test_cli_without_an_origination_model_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-behaviour", "--home", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: the behavioural model needs an origination model")
    assert "riskctl train" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "models" / BEHAVIOUR_DIR).exists()


@pytest.mark.parametrize("months", ["0", str(MAX_MONTHS + 1), "many"])
def test_cli_rejects_months_out_of_range(tmp_path: Path, months: str) -> None:
    result = runner.invoke(app, ["train-behaviour", "--home", str(tmp_path), "--months", months])
    assert result.exit_code == 2
    assert "--months" in result.output
