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

from flows.connectors.dead_letter_topic import dead_letter_messages
from flows.scoring import RawBatch, ScoredBatch

Inputs = Callable[[Dataflow], Stream[RawBatch]]


def source_input(source: Source[RawBatch]) -> Inputs:
    """Inputs from a source that already yields raw micro-batches (the JSON-lines files)."""
    return lambda flow: op.input("events", flow, source)


def route_key(batch: ScoredBatch) -> str:
    for table in (batch.scored, batch.dead):
        if table.num_rows:
            column = "event_id" if table is batch.scored else "dead_letter_id"
            return str(table.column(column)[0])
    return ""


def build_flow(
    inputs: Inputs,
    sink: Sink[tuple[str, ScoredBatch]],
    score: Callable[[RawBatch], ScoredBatch],
    *,
    dead_letter_sink: Sink[KafkaSinkMessage[bytes, bytes]] | None = None,
    flow_id: str = "riskctl",
) -> Dataflow:
    flow = Dataflow(flow_id)
    scored = op.map("score", inputs(flow), score)
    # Route each batch to a store writer by its first event's origin, spreading the load.
    routed = op.key_on("route", scored, route_key)
    op.output("store", routed, sink)
    if dead_letter_sink is not None:
        dead = op.flat_map("dead_letters", scored, dead_letter_messages)
        op.output("dead_letter_topic", dead, dead_letter_sink)
    return flow
