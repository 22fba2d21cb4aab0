"""A scorecard as an ONNX graph: float32 ``features`` in, class ``probabilities`` and each
characteristic's ``points`` out, for whole micro-batches at once.

Written here from the bins because no converter knows a scorecard. A characteristic's points
are a step function of its value: ``points = missing + (x > edges) @ steps``, where the first
edge of each characteristic is ``-inf`` (every present value is above it, NaN is not) and its
step takes the missing bin's points to the first bin's, and each later step is the change at
that bin edge. So all characteristics are one comparison and one matrix product, with the
missing bin folded in.

The graph works on the transposed batch (features by rows): gathering a characteristic's
column is then a copy of one contiguous row, where gathering columns of the row-major batch
costs an indexed copy per value (it was half the graph's time). Comparisons are on the float32
input, as :meth:`training.binning.Binning.bin_index` makes them. Points are multiples of
``POINT_QUANTUM`` below ``POINT_LIMIT``, so the float32 matrix product and sum are exact in any
order; the logit and the PD are computed in float64. Each row therefore gets bit for bit the
same PD and points whatever batch it is scored in: the Sigmoid's vectorized body and its scalar
tail round differently, so the logits are padded to a whole number of SIMD registers first
and every PD takes the vectorized path.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.scorecard import FACTOR, OFFSET, POINT_LIMIT, Scorecard

POINTS_OUTPUT = "points"
# Doubles per SIMD register of the widest kind (AVX-512); a multiple of the narrower ones.
_LANES = 8


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def step_table(card: Scorecard) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per edge its feature column, its float32 value and its step in each characteristic's
    points; and each characteristic's missing-bin points (the value below every edge)."""
    m = len(card.characteristics)
    columns: list[int] = []
    edges: list[float] = []
    steps: list[np.ndarray] = []
    missing_points = np.empty(m)
    for c, (binning, column) in enumerate(zip(card.characteristics, card.columns, strict=True)):
        bins, missing = card.attribute_points(c)
        missing_points[c] = missing
        if np.abs(np.append(bins, missing)).max() * m >= POINT_LIMIT:
            raise ValueError(f"{binning.name}: points too large to add exactly in float32")
        levels = np.append(missing, bins)
        for edge, change in zip((-np.inf, *binning.edges), np.diff(levels), strict=True):
            columns.append(column)
            edges.append(edge)
            row = np.zeros(m)
            row[c] = change
            steps.append(row)
    return (
        np.asarray(columns, dtype=np.int64),
        np.asarray(edges, dtype=np.float32),
        np.asarray(steps, dtype=np.float32).reshape(len(steps), m),
        missing_points.astype(np.float32),
    )


def scorecard_onnx(
    card: Scorecard, input_name: str, output_name: str, opset: dict[str, int]
) -> onnx.ModelProto:
    columns, edges, steps, missing_points = step_table(card)
    m = len(card.characteristics)
    initializers = [
        _const("edge_columns", columns),
        _const("edges", edges[:, None].copy()),
        _const("steps_t", steps.T.copy()),
        _const("missing_points", missing_points[:, None].copy()),
        _const("offset", np.asarray([OFFSET], dtype=np.float64)),
        _const("inv_factor", np.asarray([1.0 / FACTOR], dtype=np.float64)),
        _const("one", np.asarray([1.0], dtype=np.float64)),
        _const("first_axis", np.asarray([0], dtype=np.int64)),
        _const("lanes", np.asarray([_LANES], dtype=np.int64)),
        _const("zero", np.asarray([0], dtype=np.int64)),
        _const("column_shape", np.asarray([-1, 1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("Transpose", [input_name], ["by_feature"], perm=[1, 0]),
        helper.make_node("Gather", ["by_feature", "edge_columns"], ["edge_x"], axis=0),
        helper.make_node("Greater", ["edge_x", "edges"], ["above"]),
        helper.make_node("Cast", ["above"], ["above_f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["steps_t", "above_f"], ["stepped"]),
        helper.make_node("Add", ["stepped", "missing_points"], ["points_t"]),
        helper.make_node("Transpose", ["points_t"], [POINTS_OUTPUT], perm=[1, 0]),
        helper.make_node("ReduceSum", ["points_t", "first_axis"], ["total_f"], keepdims=0),
        helper.make_node("Cast", ["total_f"], ["total"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["offset", "total"], ["odds_points"]),
        helper.make_node("Mul", ["odds_points", "inv_factor"], ["logit"]),
        # pad = (lanes - n % lanes) % lanes logits, so no row falls in the Sigmoid's tail
        helper.make_node("Shape", ["logit"], ["rows"]),
        helper.make_node("Mod", ["rows", "lanes"], ["ragged"]),
        helper.make_node("Sub", ["lanes", "ragged"], ["short"]),
        helper.make_node("Mod", ["short", "lanes"], ["pad"]),
        helper.make_node("Concat", ["zero", "pad"], ["pads"], axis=0),
        helper.make_node("Pad", ["logit", "pads"], ["logit_padded"]),
        helper.make_node("Sigmoid", ["logit_padded"], ["pd_padded"]),
        helper.make_node("Slice", ["pd_padded", "zero", "rows"], ["pd_flat"]),
        helper.make_node("Reshape", ["pd_flat", "column_shape"], ["pd"]),
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
            helper.make_tensor_value_info(POINTS_OUTPUT, TensorProto.FLOAT, [None, m]),
        ],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset[""])], producer_name="riskctl"
    )
    model.ir_version = 8  # what every onnxruntime the project accepts (>= 1.17) loads
    onnx.checker.check_model(model)
    return model
