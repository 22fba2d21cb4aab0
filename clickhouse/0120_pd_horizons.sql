-- One horizon, named. An origination score is a lifetime PD (the applicant model's label is
-- the loan's real outcome over its term); a repayment score is a 12-month PD (the behavioural
-- model's label: 90+ days past due within 12 months). Both were stored as `pd`, and the latest
-- score per loan, the watchlist and expected loss mixed them. From here every PD and expected
-- loss column says its horizon:
--   scored_events:      pd_lifetime, expected_loss_lifetime (as scored), and pd_12m,
--                       expected_loss_12m (converted here, once, for every row old and new)
--   repayment_scores:   pd_12m, expected_loss_12m, origination_pd_lifetime
--   loan_latest_score, watchlist, expected_loss_current, loan_month_end: 12 months
--   risk_* aggregates (applications only): pd_lifetime_sum, pd_lifetime_quantiles,
--                       expected_loss_lifetime
-- The conversion assumes a constant monthly hazard over the term:
--   pd_12m = 1 - (1 - pd_lifetime) ^ (min(12, term_months) / term_months)
-- A renamed column keeps its stored values, so a store migrated before this keeps every row.
-- Migrations run before any writer starts (see 0004): nothing lands while views are rebuilt.

-- Materialized views select the old names: drop them before the renames, recreate after.
DROP VIEW IF EXISTS risk_band_minute_mv;
DROP VIEW IF EXISTS risk_by_grade_day_mv;
DROP VIEW IF EXISTS risk_by_state_day_mv;
DROP VIEW IF EXISTS risk_segment_minute_mv;
DROP VIEW IF EXISTS loan_latest_score_mv;
DROP VIEW IF EXISTS loan_latest_repayment_mv;
DROP VIEW IF EXISTS watchlist;
DROP VIEW IF EXISTS expected_loss_current;
DROP VIEW IF EXISTS roll_rates;
DROP VIEW IF EXISTS delinquency_monthly;
DROP VIEW IF EXISTS loan_month_end;

ALTER TABLE scored_events RENAME COLUMN IF EXISTS pd TO pd_lifetime;
ALTER TABLE scored_events RENAME COLUMN IF EXISTS expected_loss TO expected_loss_lifetime;
ALTER TABLE scored_events ADD COLUMN IF NOT EXISTS pd_12m Float64 MATERIALIZED
    if(term_months > 0,
       1 - pow(1 - pd_lifetime, least(12, term_months) / term_months),
       pd_lifetime)
    AFTER pd_lifetime;
ALTER TABLE scored_events ADD COLUMN IF NOT EXISTS expected_loss_12m Float64 MATERIALIZED
    pd_12m * exposure * lgd
    AFTER expected_loss_lifetime;

ALTER TABLE repayment_scores RENAME COLUMN IF EXISTS pd TO pd_12m;
ALTER TABLE repayment_scores RENAME COLUMN IF EXISTS expected_loss TO expected_loss_12m;
ALTER TABLE repayment_scores RENAME COLUMN IF EXISTS origination_pd TO origination_pd_lifetime;

ALTER TABLE risk_band_minute RENAME COLUMN IF EXISTS pd_sum TO pd_lifetime_sum;
ALTER TABLE risk_band_minute RENAME COLUMN IF EXISTS pd_quantiles TO pd_lifetime_quantiles;
ALTER TABLE risk_band_minute RENAME COLUMN IF EXISTS expected_loss TO expected_loss_lifetime;
ALTER TABLE risk_by_grade_day RENAME COLUMN IF EXISTS pd_sum TO pd_lifetime_sum;
ALTER TABLE risk_by_grade_day RENAME COLUMN IF EXISTS expected_loss TO expected_loss_lifetime;
ALTER TABLE risk_by_state_day RENAME COLUMN IF EXISTS pd_sum TO pd_lifetime_sum;
ALTER TABLE risk_by_state_day RENAME COLUMN IF EXISTS expected_loss TO expected_loss_lifetime;
ALTER TABLE risk_segment_minute RENAME COLUMN IF EXISTS pd_sum TO pd_lifetime_sum;
ALTER TABLE risk_segment_minute RENAME COLUMN IF EXISTS pd_quantiles TO pd_lifetime_quantiles;
ALTER TABLE risk_segment_minute RENAME COLUMN IF EXISTS expected_loss TO expected_loss_lifetime;

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_band_minute_mv TO risk_band_minute AS
SELECT
    toStartOfMinute(event_time) AS minute,
    band,
    model_version,
    count() AS loans,
    sum(pd_lifetime) AS pd_lifetime_sum,
    quantilesState(0.5, 0.9, 0.95, 0.99)(pd_lifetime) AS pd_lifetime_quantiles,
    sum(exposure) AS exposure,
    sum(expected_loss_lifetime) AS expected_loss_lifetime
FROM scored_events
GROUP BY minute, band, model_version;

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_by_grade_day_mv TO risk_by_grade_day AS
SELECT
    toDate(event_time) AS day,
    grade,
    sub_grade,
    band,
    count() AS loans,
    sum(pd_lifetime) AS pd_lifetime_sum,
    sum(exposure) AS exposure,
    sum(expected_loss_lifetime) AS expected_loss_lifetime
FROM scored_events
GROUP BY day, grade, sub_grade, band;

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_by_state_day_mv TO risk_by_state_day AS
SELECT
    toDate(event_time) AS day,
    addr_state,
    band,
    count() AS loans,
    sum(pd_lifetime) AS pd_lifetime_sum,
    sum(exposure) AS exposure,
    sum(expected_loss_lifetime) AS expected_loss_lifetime
FROM scored_events
GROUP BY day, addr_state, band;

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_segment_minute_mv TO risk_segment_minute AS
SELECT
    toStartOfMinute(event_time) AS minute,
    band,
    model_version,
    grade,
    addr_state,
    count() AS loans,
    sum(pd_lifetime) AS pd_lifetime_sum,
    quantilesState(0.5, 0.9, 0.95, 0.99)(pd_lifetime) AS pd_lifetime_quantiles,
    sum(exposure) AS exposure,
    sum(expected_loss_lifetime) AS expected_loss_lifetime
FROM scored_events
GROUP BY minute, band, model_version, grade, addr_state;

-- Each loan's latest score, on 12 months whichever model scored it. Its rows so far held
-- lifetime PDs for loans whose latest event is the application: rebuilt from the scores.
ALTER TABLE loan_latest_score RENAME COLUMN IF EXISTS pd TO pd_12m;
ALTER TABLE loan_latest_score RENAME COLUMN IF EXISTS expected_loss TO expected_loss_12m;
TRUNCATE TABLE IF EXISTS loan_latest_score;

CREATE MATERIALIZED VIEW IF NOT EXISTS loan_latest_score_mv TO loan_latest_score AS
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 AS version,
    event_time, processed_at, event_id, model_version, model_kind, pd_12m, band, exposure,
    expected_loss_12m, grade, sub_grade, addr_state, reason_codes, reason_texts
FROM scored_events;

CREATE MATERIALIZED VIEW IF NOT EXISTS loan_latest_repayment_mv TO loan_latest_score AS
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 + installment_number AS version,
    event_time, processed_at, event_id, model_version, pd_12m, band, exposure,
    expected_loss_12m, grade, sub_grade, addr_state, reason_codes
FROM repayment_scores;

INSERT INTO loan_latest_score
    (loan_id, version, event_time, processed_at, event_id, model_version, model_kind, pd_12m,
     band, exposure, expected_loss_12m, grade, sub_grade, addr_state, reason_codes, reason_texts)
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 AS version,
    event_time, processed_at, event_id, model_version, model_kind, pd_12m, band, exposure,
    expected_loss_12m, grade, sub_grade, addr_state, reason_codes, reason_texts
FROM scored_events;

INSERT INTO loan_latest_score
    (loan_id, version, event_time, processed_at, event_id, model_version, pd_12m, band,
     exposure, expected_loss_12m, grade, sub_grade, addr_state, reason_codes)
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 + installment_number AS version,
    event_time, processed_at, event_id, model_version, pd_12m, band, exposure,
    expected_loss_12m, grade, sub_grade, addr_state, reason_codes
FROM repayment_scores;

CREATE VIEW IF NOT EXISTS watchlist AS
SELECT
    loan_id, pd_12m, band, exposure, expected_loss_12m, grade, sub_grade, addr_state,
    reason_codes,
    if(empty(reason_texts), arrayMap(c -> toString(c), reason_codes), reason_texts)
        AS reason_texts,
    event_time, model_version, model_kind
FROM loan_latest_score FINAL
ORDER BY pd_12m DESC, loan_id;

-- Current expected loss by band, grade and state: each loan's latest score, 12 months.
CREATE VIEW IF NOT EXISTS expected_loss_current AS
SELECT band, grade, addr_state, count() AS loans, sum(exposure) AS exposure,
       sum(expected_loss_12m) AS expected_loss_12m
FROM loan_latest_score FINAL
GROUP BY band, grade, addr_state;

-- 0040's month-end positions, reading the renamed 12-month PD (the comments there hold).
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
    latest.5 * balance * latest.6 AS expected_loss_12m
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
        -- (event date, installment, paid cents, balance, pd_12m, lgd, band, event time)
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
            argMax(pd_12m, (event_time, processed_at)) AS e_pd,
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

CREATE VIEW IF NOT EXISTS delinquency_monthly AS
SELECT month, dpd_bucket, count() AS loans, sum(balance) AS balance,
       sum(expected_loss_12m) AS expected_loss_12m
FROM loan_month_end
GROUP BY month, dpd_bucket;

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
