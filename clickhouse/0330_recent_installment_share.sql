-- The origination feature recent_installment_share (open_il_24m / num_il_tl), stored beside the
-- other features as every feature is (drift reads them by name). Rows scored before it existed
-- did not compute it: NaN, the features' missing marker, not a made-up 0.

ALTER TABLE scored_events ADD COLUMN IF NOT EXISTS recent_installment_share Float64 DEFAULT nan AFTER income_verified;
