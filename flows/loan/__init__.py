"""One loan's life after origination. Pure: no I/O, no clock.

* :mod:`flows.loan.schedule`: the calendar and amortization (due dates, months on book).
* :mod:`flows.loan.state`: the state machine (:class:`LoanState`, open, repay, days past due).
* :mod:`flows.loan.behaviour`: the behavioural features the live model reads.
* :mod:`flows.loan.observe`: a repayment applied and described in one pass (the book's hot path).
* :mod:`flows.loan.labels`: reporting labels (delinquency buckets, LendingClub statuses).
* :mod:`flows.loan.book`: the per-loan book the dataflow's stateful step keeps.
"""

import sys

from flows.loan import book, state

# Bytewax pickles each shard's book into its recovery snapshots, and a pickle names a class by
# its module: snapshots written before this package existed name flows.loan_state.LoanState and
# flows.loan_book.{BookEntry,Segment,Repaid}. Those names resolve here, so such a recovery
# directory still resumes (tests/unit/test_loan_snapshots.py). Code imports from flows.loan.
sys.modules.setdefault("flows.loan_state", state)
sys.modules.setdefault("flows.loan_book", book)
