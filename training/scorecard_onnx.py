"""A scorecard as an ONNX graph: float32 ``features`` in, class ``probabilities`` and each
characteristic's ``points`` out, for whole micro-batches at once.

Written here from the bins because no converter knows a scorecard. A characteristic's points
are a step function of its value, so the graph is three tensor operations rather than a
lookup per row: ``points = base + (x > edges) @ steps + isnan(x) * missing_step``, where
``base`` is the first bin's points, ``steps`` the change at each edge and ``missing_step`` the
missing bin's difference from the first bin (NaN compares false with every edge, so a missing
value starts in the first bin). The comparison is made on the float32 input, the arithmetic in
float64, so the graph reproduces :meth:`Scorecard.predict_proba` to rounding; and it gives
each row bit for bit the same PD and points whatever batch the row is scored in.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.scorecard import FACTOR, OFFSET, Scorecard

POINTS_OUTPUT = "points"


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


# Doubles per row of the PD's Sigmoid: a whole AVX-512 register (two AVX2 ones).
_LANES = 8


def scorecard_onnx(
    card: Scorecard, input_name: str, output_name: str, opset: dict[str, int]
) -> onnx.ModelProto:
    edge_columns: list[int] = []
    edges: list[float] = []
    steps = []
    base = []
    missing_step = []
    m = len(card.characteristics)
    for c, (binning, column) in enumerate(zip(card.characteristics, card.columns, strict=True)):
        bins, missing = card.attribute_points(c)
        base.append(bins[0])
        missing_step.append(missing - bins[0])
        for k, edge in enumerate(binning.edges):
            edge_columns.append(column)
            edges.append(edge)
            row = np.zeros(m)
            row[c] = bins[k + 1] - bins[k]
            steps.append(row)
    step_matrix = np.asarray(steps, dtype=np.float64).reshape(len(steps), m)
    initializers = [
        _const("edge_columns", np.asarray(edge_columns, dtype=np.int64)),
        _const("edges", np.asarray(edges, dtype=np.float32)),
        _const("steps", step_matrix),
        _const("char_columns", np.asarray(card.columns, dtype=np.int64)),
        _const("base", np.asarray(base, dtype=np.float64)),
        _const("missing_step", np.asarray(missing_step, dtype=np.float64)),
        _const("offset", np.asarray([OFFSET], dtype=np.float64)),
        _const("inv_factor", np.asarray([1.0 / FACTOR], dtype=np.float64)),
        _const("one", np.asarray([1.0], dtype=np.float64)),
        _const("sum_axes", np.asarray([1], dtype=np.int64)),
        _const("lanes", np.asarray([1, _LANES], dtype=np.int64)),
        _const("first", np.asarray([0], dtype=np.int64)),
    ]
    # Points are multiples of POINT_QUANTUM, so the matrix product and the sums below are
    # exact: a row's points and total are the same whatever batch it is scored in.
    nodes = [
        helper.make_node("Gather", [input_name, "edge_columns"], ["edge_x"], axis=1),
        helper.make_node("Greater", ["edge_x", "edges"], ["above"]),
        helper.make_node("Cast", ["above"], ["above_f"], to=TensorProto.DOUBLE),
        helper.make_node("MatMul", ["above_f", "steps"], ["stepped"]),
        helper.make_node("Gather", [input_name, "char_columns"], ["char_x"], axis=1),
        helper.make_node("IsNaN", ["char_x"], ["is_missing"]),
        helper.make_node("Cast", ["is_missing"], ["is_missing_f"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["is_missing_f", "missing_step"], ["missing_points"]),
        helper.make_node("Add", ["stepped", "missing_points"], ["moved"]),
        helper.make_node("Add", ["moved", "base"], [POINTS_OUTPUT]),
        helper.make_node("ReduceSum", [POINTS_OUTPUT, "sum_axes"], ["total"], keepdims=1),
        helper.make_node("Sub", ["offset", "total"], ["odds_points"]),
        helper.make_node("Mul", ["odds_points", "inv_factor"], ["logit"]),
        # Sigmoid runs vectorized over whole SIMD registers and element by element over a
        # ragged tail, which round differently: each logit is copied across a full register
        # so every PD takes the same path wherever its row sits in the batch.
        helper.make_node("Expand", ["logit", "lanes"], ["logit_lanes"]),
        helper.make_node("Sigmoid", ["logit_lanes"], ["pd_lanes"]),
        helper.make_node("Gather", ["pd_lanes", "first"], ["pd"], axis=1),
        helper.make_node("Sub", ["one", "pd"], ["good"]),
        helper.make_node("Concat", ["good", "pd"], [output_name], axis=1),
    ]
    n_features = len(card.feature_names)
    graph = helper.make_graph(
        nodes,
        f"scorecard_{card.kind}",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info(output_name, TensorProto.DOUBLE, [None, 2]),
            helper.make_tensor_value_info(POINTS_OUTPUT, TensorProto.DOUBLE, [None, m]),
        ],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset[""])], producer_name="riskctl"
    )
    model.ir_version = 8  # what every onnxruntime the project accepts (>= 1.17) loads
    onnx.checker.check_model(model)
    return model
