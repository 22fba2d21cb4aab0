-- Users and roles for a ClickHouse server. The embedded chDB engine has no access control, so
-- this is not a numbered migration: an administrator applies it with `riskctl db init-users`
-- after `riskctl db migrate` (the compose init service does both).
--
-- ${database}, ${writer_user} and ${analyst_user} are checked identifiers; ${writer_password}
-- and ${analyst_password} arrive as quoted SQL strings from the environment. Re-running is
-- safe: it resets each role's grants to exactly these and sets the passwords again (rotation).
-- Grants may name tables that do not exist yet; ClickHouse checks them at query time.

-- The dataflow's writer: INSERT on the tables the sink writes, nothing else.
CREATE ROLE IF NOT EXISTS riskctl_writer_role;
REVOKE ALL ON *.* FROM riskctl_writer_role;
GRANT INSERT ON ${database}.raw_events TO riskctl_writer_role;
GRANT INSERT ON ${database}.scored_events TO riskctl_writer_role;
GRANT INSERT ON ${database}.dead_letters TO riskctl_writer_role;
GRANT INSERT ON ${database}.repayment_scores TO riskctl_writer_role;
GRANT INSERT ON ${database}.ops_batches TO riskctl_writer_role;
GRANT INSERT ON ${database}.ops_consumer_lag TO riskctl_writer_role;
-- The decision service (`riskctl serve`) records every answer.
GRANT INSERT ON ${database}.decisions TO riskctl_writer_role;
-- A shadowing challenger's scores (RISKCTL_SHADOW).
GRANT INSERT ON ${database}.shadow_scores TO riskctl_writer_role;
-- Replays must not add rows twice: before inserting, the writer asks which keys are stored,
-- so it reads the key columns, and only those (and raw events' content hashes, which tell a
-- repeat from a conflicting duplicate).
GRANT SELECT(event_id) ON ${database}.raw_events TO riskctl_writer_role;
GRANT SELECT(content_hash) ON ${database}.raw_events TO riskctl_writer_role;
GRANT SELECT(event_id) ON ${database}.scored_events TO riskctl_writer_role;
GRANT SELECT(dead_letter_id) ON ${database}.dead_letters TO riskctl_writer_role;
GRANT SELECT(event_id) ON ${database}.repayment_scores TO riskctl_writer_role;
GRANT SELECT(event_id) ON ${database}.shadow_scores TO riskctl_writer_role;
-- Each write is journaled whole before the tables get it, and its partition dropped after
-- (flows/store/journal.py); a writer that reconnects reads what is left to complete it.
GRANT INSERT, SELECT, ALTER DELETE ON ${database}.sink_journal TO riskctl_writer_role;
-- Each write records the hashes of the keys it stored (stored_keys, 0300), through the journal;
-- every writer reads the other writers' recent ones to keep its in-memory key set whole.
GRANT INSERT, SELECT ON ${database}.stored_keys TO riskctl_writer_role;
-- The per-loan state step rebuilds a loan first met in this run from its stored events
-- (flows/connectors/loan_history.py).
GRANT SELECT ON ${database}.raw_events TO riskctl_writer_role;
GRANT SELECT(loan_id) ON ${database}.scored_events TO riskctl_writer_role;
GRANT SELECT(pd_lifetime) ON ${database}.scored_events TO riskctl_writer_role;
GRANT SELECT(model_version) ON ${database}.scored_events TO riskctl_writer_role;
GRANT SELECT(loan_id) ON ${database}.repayment_scores TO riskctl_writer_role;
-- Workers check on start that the schema is current: the migration ledger's CREATE TABLE IF
-- NOT EXISTS (ClickHouse checks the grant even when the table exists) and its SELECT. A
-- pending migration then fails for lack of DDL rights: migrations are the administrator's.
GRANT SELECT, CREATE TABLE ON ${database}.schema_migrations TO riskctl_writer_role;
-- clickhouse-connect reads the user's settings when it connects; servers configured with
-- select_from_system_db_requires_grant would refuse that without this.
GRANT SELECT ON system.settings TO riskctl_writer_role;

-- Analysts and Grafana: SELECT on the serving tables and views, which the dashboards read.
-- Loan-level detail stays with the watchlist (latest score, band, reason codes); the raw
-- payloads, per-event features and dead-letter payloads are not readable.
CREATE ROLE IF NOT EXISTS riskctl_analyst_role;
REVOKE ALL ON *.* FROM riskctl_analyst_role;
GRANT SELECT ON ${database}.risk_band_minute TO riskctl_analyst_role;
GRANT SELECT ON ${database}.risk_segment_minute TO riskctl_analyst_role;
GRANT SELECT ON ${database}.risk_by_grade_day TO riskctl_analyst_role;
GRANT SELECT ON ${database}.risk_by_state_day TO riskctl_analyst_role;
GRANT SELECT ON ${database}.dead_letters_minute TO riskctl_analyst_role;
-- The watchlist view runs with its reader's rights, so it needs its source table too.
GRANT SELECT ON ${database}.watchlist TO riskctl_analyst_role;
GRANT SELECT ON ${database}.loan_latest_score TO riskctl_analyst_role;
GRANT SELECT ON ${database}.ops_batches TO riskctl_analyst_role;
GRANT SELECT ON ${database}.ops_consumer_lag TO riskctl_analyst_role;
GRANT SELECT ON ${database}.drift_psi TO riskctl_analyst_role;
-- Delinquency views run with their reader's rights: their source table too.
GRANT SELECT ON ${database}.delinquency_monthly TO riskctl_analyst_role;
GRANT SELECT ON ${database}.roll_rates TO riskctl_analyst_role;
GRANT SELECT ON ${database}.expected_loss_current TO riskctl_analyst_role;
GRANT SELECT ON ${database}.loan_month_end TO riskctl_analyst_role;
-- Champion against shadowing challenger: PDs and bands per application (no features or
-- payloads), and the comparison views over them.
GRANT SELECT ON ${database}.shadow_scores TO riskctl_analyst_role;
GRANT SELECT ON ${database}.shadow_pd_by_version TO riskctl_analyst_role;
GRANT SELECT ON ${database}.shadow_band_migration TO riskctl_analyst_role;
GRANT SELECT ON ${database}.shadow_outcome_auc TO riskctl_analyst_role;
GRANT SELECT ON system.settings TO riskctl_analyst_role;

-- Read-only with bounded queries. Grafana's plugin sets max_execution_time on every query,
-- which readonly = 1 would refuse; CHANGEABLE_IN_READONLY lets it, within 1-60 s (it needs
-- access_control_improvements.settings_constraints_replace_previous, which
-- clickhouse/server/config.d/riskctl.xml turns on). Results are capped in rows and bytes.
-- Strings as Arrow strings (the default since ClickHouse 24.2) is fixed here because a
-- read-only connection cannot ask for it, and riskctl reads results as Arrow.
CREATE SETTINGS PROFILE OR REPLACE riskctl_analyst_profile SETTINGS
    readonly = 1 CONST,
    output_format_arrow_string_as_string = 1,
    max_execution_time = 30 MIN 1 MAX 60 CHANGEABLE_IN_READONLY,
    max_result_rows = 500000 CONST,
    max_result_bytes = 200000000 CONST,
    result_overflow_mode = 'throw' CONST,
    max_memory_usage = 4000000000 CONST;

CREATE USER IF NOT EXISTS ${writer_user}
    IDENTIFIED WITH sha256_password BY ${writer_password}
    DEFAULT DATABASE ${database};
ALTER USER ${writer_user}
    IDENTIFIED WITH sha256_password BY ${writer_password}
    DEFAULT DATABASE ${database};
GRANT riskctl_writer_role TO ${writer_user};
ALTER USER ${writer_user} DEFAULT ROLE riskctl_writer_role;

CREATE USER IF NOT EXISTS ${analyst_user}
    IDENTIFIED WITH sha256_password BY ${analyst_password}
    DEFAULT DATABASE ${database};
ALTER USER ${analyst_user}
    IDENTIFIED WITH sha256_password BY ${analyst_password}
    DEFAULT DATABASE ${database}
    SETTINGS PROFILE 'riskctl_analyst_profile';
GRANT riskctl_analyst_role TO ${analyst_user};
ALTER USER ${analyst_user} DEFAULT ROLE riskctl_analyst_role;
