"""One loan's life after origination: its repayment state, and the book of loans the dataflow's
stateful step keeps (:mod:`flows.loan.book`)."""

import sys

from flows.loan import book, state

# Bytewax pickles each shard's book into its recovery snapshots, and a pickle names a class by
# its module: snapshots written before this package existed name flows.loan_state.LoanState and
# flows.loan_book.{BookEntry,Segment,Repaid}. Those names resolve here, so such a recovery
# directory still resumes (tests/test_loan_snapshots.py). Code imports from flows.loan.
sys.modules.setdefault("flows.loan_state", state)
sys.modules.setdefault("flows.loan_book", book)
