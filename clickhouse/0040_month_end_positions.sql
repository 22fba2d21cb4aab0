-- Delinquency at each month's end, from each loan's schedule and the payments received by
-- then, instead of the state at its last event of the month (0006's loan_month_state, which
-- showed a loan that paid late every month as current, and left out loans without an event
-- in a month). Every repayment score carries the loan's schedule so the views can compute it.
-- Rows scored before this migration have no schedule (term_months 0) and are left out of the
-- month-end positions; replaying their events fills it.

ALTER TABLE repayment_scores ADD COLUMN IF NOT EXISTS origination_date Date DEFAULT toDate(0);
ALTER TABLE repayment_scores ADD COLUMN IF NOT EXISTS term_months UInt16 DEFAULT 0;
ALTER TABLE repayment_scores ADD COLUMN IF NOT EXISTS installment Float64 DEFAULT 0;
ALTER TABLE repayment_scores ADD COLUMN IF NOT EXISTS funded_amnt Float64 DEFAULT 0;

DROP VIEW IF EXISTS delinquency_monthly;
DROP VIEW IF EXISTS roll_rates;
DROP TABLE IF EXISTS loan_month_state_mv;
DROP TABLE IF EXISTS loan_month_state;

-- One row per loan and month end, from the month the loan was originated through the month of
-- its last repayment event. The month under way (its end after the latest event in the store)
-- is read on the latest event's date instead: month-to-date. At a month end the loan's position uses the events dated
-- on or before it (the latest event per installment, so a correction replaces what it
-- corrects): payments go to the oldest installment first, so days past due count from the due
-- date of the oldest installment the payments do not cover (installment n falls due n calendar
-- months after origination, the day clamped to the month's end), 0 once the balance is paid
-- or every installment is covered; the balance is that of the highest installment reported
-- (the funded amount before the first). Expected loss at the month end: the latest score's
-- 12-month PD x the month-end balance x its LGD. flows/loan_state.py computes the same days
-- past due in Python; tests/test_month_end.py checks one against the other.
CREATE VIEW IF NOT EXISTS loan_month_end AS
WITH (SELECT toDate(max(event_time)) FROM repayment_scores) AS data_as_of
SELECT
    toStartOfMonth(month_end) AS month,
    month_end,
    loan_id,
    grade,
    addr_state,
    origination_date,
    arraySum(arrayMap(e -> if(e.1 <= month_end, e.3, 0), events)) AS paid_cents,
    intDiv(paid_cents, installment_cents) AS covered,
    arrayFirst(e -> e.1 <= month_end, by_installment) AS last_reported,
    if(last_reported.2 = 0, funded_amnt, last_reported.4) AS balance,
    if(
        balance <= 0.005 OR covered >= term_months,
        0,
        greatest(
            0, dateDiff('day', addMonths(origination_date, toInt32(covered) + 1), month_end)
        )
    ) AS days_past_due,
    multiIf(
        days_past_due = 0, 'current',
        days_past_due < 30, '1-29',
        days_past_due < 60, '30-59',
        days_past_due < 90, '60-89',
        '90+'
    ) AS dpd_bucket,
    arrayFirst(e -> e.1 <= month_end, by_time) AS latest,
    latest.5 AS pd_12m,
    latest.7 AS band,
    latest.5 * balance * latest.6 AS expected_loss
FROM
(
    SELECT
        loan_id,
        any(loan_grade) AS grade,
        any(loan_state) AS addr_state,
        any(opened) AS origination_date,
        any(term) AS term_months,
        toInt64(round(any(scheduled) * 100)) AS installment_cents,
        any(funded) AS funded_amnt,
        -- (event date, installment, paid cents, balance, pd, lgd, band, event time)
        groupArray(
            (toDate(at), installment_number, paid, balance_after, e_pd, e_lgd, e_band, at)
        ) AS events,
        arrayReverseSort(e -> e.2, events) AS by_installment,
        arrayReverseSort(e -> (e.8, e.2), events) AS by_time,
        max(toDate(at)) AS last_event
    FROM
    (
        SELECT
            loan_id,
            installment_number,
            argMax(event_time, (event_time, processed_at)) AS at,
            argMax(toInt64(round(amount_paid * 100)), (event_time, processed_at)) AS paid,
            argMax(outstanding_balance, (event_time, processed_at)) AS balance_after,
            argMax(pd, (event_time, processed_at)) AS e_pd,
            argMax(lgd, (event_time, processed_at)) AS e_lgd,
            argMax(band, (event_time, processed_at)) AS e_band,
            any(grade) AS loan_grade,
            any(addr_state) AS loan_state,
            any(origination_date) AS opened,
            any(term_months) AS term,
            any(installment) AS scheduled,
            any(funded_amnt) AS funded
        FROM repayment_scores FINAL
        WHERE term_months > 0
        GROUP BY loan_id, installment_number
    )
    GROUP BY loan_id
)
ARRAY JOIN
    arrayMap(
        i -> least(
            toLastDayOfMonth(addMonths(toStartOfMonth(origination_date), toInt32(i))), data_as_of
        ),
        range(toUInt32(dateDiff('month', origination_date, least(last_event, data_as_of)) + 1))
    ) AS month_end;

-- Delinquency buckets over time: loans, balances and expected loss per bucket at each month's
-- end (month is the month's first day).
CREATE VIEW IF NOT EXISTS delinquency_monthly AS
SELECT month, dpd_bucket, count() AS loans, sum(balance) AS balance,
       sum(expected_loss) AS expected_loss
FROM loan_month_end
GROUP BY month, dpd_bucket;

-- Roll rates: of the loans in a bucket at one month's end, the share in each bucket at the next
-- month's end (every loan on book at both ends has a position at each, events or not).
CREATE VIEW IF NOT EXISTS roll_rates AS
SELECT
    a.month AS month,
    a.dpd_bucket AS from_bucket,
    b.dpd_bucket AS to_bucket,
    count() AS loans,
    loans / sum(loans) OVER (PARTITION BY a.month, a.dpd_bucket) AS rate
FROM (SELECT month, loan_id, dpd_bucket FROM loan_month_end) AS a
INNER JOIN (SELECT month, loan_id, dpd_bucket FROM loan_month_end) AS b
    ON b.loan_id = a.loan_id AND b.month = addMonths(a.month, 1)
GROUP BY month, from_bucket, to_bucket;

-- Current expected loss on one horizon, 12 months, from each loan's latest score. A live score
-- (repayment) already is a 12-month PD. An origination score is a lifetime PD (the loan's real
-- outcome over its term): it is converted at a constant monthly hazard, pd_12m = 1 - (1 -
-- pd)^(12 / term_months), and its expected loss scaled by pd_12m / pd. Origination rows are the
-- latest scores whose version has no installment number (version % 1000 = 0, 0002 and 0006).
DROP VIEW IF EXISTS expected_loss_current;
CREATE VIEW IF NOT EXISTS expected_loss_current AS
SELECT band, grade, addr_state, count() AS loans, sum(exposure) AS exposure,
       sum(expected_loss_12m) AS expected_loss
FROM
(
    SELECT
        latest.band AS band,
        latest.grade AS grade,
        latest.addr_state AS addr_state,
        latest.exposure AS exposure,
        if(
            latest.version % 1000 = 0 AND terms.term > 0 AND latest.pd > 0,
            latest.expected_loss * (1 - pow(1 - latest.pd, 12 / terms.term)) / latest.pd,
            latest.expected_loss
        ) AS expected_loss_12m
    FROM loan_latest_score AS latest FINAL
    LEFT JOIN
    (
        SELECT loan_id, any(term_months) AS term FROM scored_events GROUP BY loan_id
    ) AS terms ON terms.loan_id = latest.loan_id
)
GROUP BY band, grade, addr_state;
