"""Training's defaults, apart from the training code: `riskctl COMMAND -h` shows them without
importing scikit-learn, pandas or the data."""

from __future__ import annotations

# The seed of the origination scorecards' split and cross-validation.
DEFAULT_SEED = 42
# The seed of the behavioural model's derived repayment histories.
BEHAVIOUR_SEED = 42
# One horizon for every PD the system stores: 12 months (the origination PD, a lifetime
# probability, is converted to it where the two meet; docs/behaviour.md).
HORIZON_MONTHS = 12
# Installment terms are 36 or 60 months; the outcome window has to fit in the shorter one.
MAX_MONTHS = 36 - HORIZON_MONTHS - 1
# Months of repayments replayed per loan.
DEFAULT_MONTHS = 12
