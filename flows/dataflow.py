"""The dataflow factory: an input step, scoring, and the sinks. Logic lives in
:mod:`flows.scoring` and :mod:`flows.writer`; this module only wires Bytewax steps together.
"""

from __future__ import annotations

from collections.abc import Callable

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.batches import ApplicationBatch, RawBatch, RepaymentBatch, ScoredBatch
from flows.connectors.dead_letter_topic import dead_letter_messages
from flows.loan.book import BookOutcome, shard_events
from flows.steps.loan_history import HistoryBookLogic, LoanHistory
from flows.steps.loan_state_step import LoanBookLogic

Inputs = Callable[[Dataflow], Stream[RawBatch]]


def source_input(source: Source[RawBatch]) -> Inputs:
    """Inputs from a source that already yields raw micro-batches (the JSON-lines files)."""
    return lambda flow: op.input("events", flow, source)


def route_key(batch: ScoredBatch) -> str:
    scores = batch.scored if isinstance(batch, ApplicationBatch) else batch.repayments
    for table, column in ((scores, "event_id"), (batch.dead, "dead_letter_id")):
        if table.num_rows:
            return str(table.column(column)[0])
    return ""


def build_flow(
    inputs: Inputs,
    sink: Sink[tuple[str, ScoredBatch]],
    score: Callable[[RawBatch], ApplicationBatch],
    *,
    live: Callable[[list[BookOutcome]], list[RepaymentBatch]] | None = None,
    dead_letter_sink: Sink[KafkaSinkMessage[bytes | None, bytes | None]] | None = None,
    flow_id: str = "riskctl",
    history: LoanHistory | None = None,
    snapshots: bool = True,
) -> Dataflow:
    """``snapshots``: whether the run keeps recovery snapshots; without them the loan state
    step answers Bytewax's per-epoch snapshot calls with None instead of copying its book."""
    flow = Dataflow(flow_id)
    scored = op.map("score", inputs(flow), score)
    if live is not None:
        # Repayments move per-loan state, keyed by a shard of the loan id so that one loan's
        # events always meet the same state, on whichever worker owns the shard.
        work = op.flat_map("shard", scored, lambda batch: shard_events(batch.loan_events))
        observed = op.stateful_batch(
            "loans",
            work,
            lambda resume: (
                LoanBookLogic(resume, snapshots)
                if history is None
                else HistoryBookLogic(resume, history, snapshots)
            ),
        )
        # Every shard's observations that arrive together are scored in one ONNX call.
        lived = op.flat_map_batch("live_pd", op.key_rm("unshard", observed), live)
        scored = op.merge("all_scores", scored, lived)
    # Route each batch to a store writer by its first event's origin, spreading the load.
    routed = op.key_on("route", scored, route_key)
    op.output("store", routed, sink)
    if dead_letter_sink is not None:
        dead = op.flat_map("dead_letters", scored, dead_letter_messages)
        op.output("dead_letter_topic", dead, dead_letter_sink)
    return flow
