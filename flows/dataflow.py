"""The dataflow factory: source in, scored batches out. Logic lives in :mod:`flows.scoring`
and :mod:`flows.writer`; this module only wires Bytewax steps together.
"""

from __future__ import annotations

from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.scoring import RawBatch, ScoredBatch


def build_flow(
    source: Source[RawBatch],
    sink: Sink[ScoredBatch],
    score: Callable[[RawBatch], ScoredBatch],
    flow_id: str = "riskctl",
) -> Dataflow:
    flow = Dataflow(flow_id)
    raw = op.input("events", flow, source)
    scored = op.map("score", raw, score)
    op.output("store", scored, sink)
    return flow
