"""Training's defaults, apart from the training code: `riskctl COMMAND -h` shows them without
importing scikit-learn, pandas or the data."""

from __future__ import annotations

# The seed of the origination scorecards' split and cross-validation.
DEFAULT_SEED = 42
# Stratified 80/20 splits the origination pipeline is rerun on to judge its held-out AUC (one
# split's ~103 held-out bads leave its AUC a standard error of ~0.025; training/repeated.py).
DEFAULT_REPEATS = 20
# The seed of the behavioural model's derived repayment histories.
BEHAVIOUR_SEED = 42
# One horizon for every PD the system stores: 12 months (the origination PD, a lifetime
# probability, is converted to it where the two meet; docs/behaviour.md).
HORIZON_MONTHS = 12
# Installment terms are 36 or 60 months; the outcome window has to fit in the shorter one.
MAX_MONTHS = 36 - HORIZON_MONTHS - 1
# Months of repayments replayed per loan.
DEFAULT_MONTHS = 12
