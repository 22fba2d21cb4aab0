"""The model registry's read side and batch scoring with ONNX Runtime.

A model version is a directory ``<models_dir>/<version>/`` holding ``model.onnx``, ``card.json``
and ``card.md``. Each origination model kind has a pointer to the version in use:
``<models_dir>/CURRENT`` for the applicant model (the default kind keeps the registry's
original pointer) and ``CURRENT-priced`` for the priced one. The card carries what scoring
needs besides the ONNX graph: the feature order, the graph's inputs and outputs, the SHA-256 of
``model.onnx``, and the reason-code terms: a scorecard's reference (neutral) points and reason
table, or the linear contribution terms of the behavioural model.

A model is verified when it loads: a card that is not JSON or lacks a field, a ``model.onnx``
whose hash differs from the card's (truncated, replaced, another version's), a graph ONNX
Runtime refuses, or inputs and outputs other than the card's each give one
:class:`ModelError` naming what is wrong, never a traceback.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from flows.features import FEATURE_NAMES
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES
from flows.model_cards import BEHAVIOUR_DIR, ModelError, current_version, read_card
from flows.pacing import Pace

_log = logging.getLogger(__name__)
# A characteristic costs a reason code only when it loses more than this many points.
_REASON_EPS = 1e-9


# What scoring reads from a card, by path, with the type each must have.
_CARD_FIELDS: tuple[tuple[tuple[str, ...], type | tuple[type, ...]], ...] = (
    (("version",), str),
    (("feature_names",), list),
    (("onnx",), dict),
    (("onnx", "input"), str),
    (("onnx", "output"), str),
    (("onnx", "positive_class_index"), int),
    (("onnx", "sha256"), str),
    (("onnx", "inputs"), list),
    (("onnx", "outputs"), list),
    (("reasons",), dict),
    (("reasons", "method"), str),
)
_SCORECARD_FIELDS = (
    (("reasons", "characteristics"), list),
    (("reasons", "columns"), list),
    (("reasons", "reference_points"), list),
    (("reasons", "codes"), list),
    (("reasons", "texts"), list),
    (("reasons", "points_output"), str),
)
_LINEAR_FIELDS = tuple((("reasons", k), list) for k in ("fill", "center", "scale", "coef"))


def _field(card: dict[str, Any], path: tuple[str, ...], kind: type | tuple[type, ...]) -> Any:
    value: Any = card
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ModelError(f"model card lacks the field {'.'.join(path)}; re-export the model")
        value = value[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelError(f"model card field {'.'.join(path)} has the wrong type")
    return value


def check_card(card: dict[str, Any]) -> None:
    """Every field scoring reads is there, with its type; the reason terms fit together."""
    for path, kind in _CARD_FIELDS:
        _field(card, path, kind)
    method = card["reasons"]["method"]
    extra = _SCORECARD_FIELDS if method == "scorecard" else _LINEAR_FIELDS
    for path, kind in extra:
        _field(card, path, kind)
    if not _all(card["feature_names"], str):
        raise ModelError("model card field feature_names must list names")
    index = card["onnx"]["positive_class_index"]
    if index not in (0, 1):
        raise ModelError("model card field onnx.positive_class_index must be 0 or 1")
    reasons = card["reasons"]
    if method == "scorecard":
        m = len(reasons["characteristics"])
        texts_fit = (
            _all(reasons["codes"], str)
            and _all(reasons["texts"], str)
            and _all(reasons["reference_points"], (int, float))
            and _all(reasons["columns"], int)
            and all(0 <= c < len(card["feature_names"]) for c in reasons["columns"])
            and len(reasons["columns"]) == len(reasons["reference_points"]) == m
            and len(reasons["codes"]) == len(reasons["texts"]) == 2 * m
        )
    else:
        terms = [reasons[k] for k in ("fill", "center", "scale", "coef")]
        texts_fit = all(
            _all(t, (int, float)) and len(t) == len(card["feature_names"]) for t in terms
        )
    if not texts_fit:
        raise ModelError("model card reason terms do not fit together; re-export the model")


def _all(values: list[Any], kind: type | tuple[type, ...]) -> bool:
    return all(isinstance(v, kind) and not isinstance(v, bool) for v in values)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def io_spec(session: ort.InferenceSession) -> dict[str, list[dict[str, Any]]]:
    """A graph's inputs and outputs as the card records them: name, element type, rank."""

    def describe(args: list[Any]) -> list[dict[str, Any]]:
        # Named or unnamed batch dimensions are both "any size" (None).
        return [
            {"name": a.name, "type": a.type, "shape": [d if isinstance(d, int) else None
                                                       for d in a.shape]}
            for a in args
        ]  # fmt: skip

    return {"inputs": describe(session.get_inputs()), "outputs": describe(session.get_outputs())}


def open_session(model_path: Path | bytes) -> ort.InferenceSession:
    """A single-threaded session (workers scale by process); any refusal is a ModelError."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = model_path if isinstance(model_path, bytes) else str(model_path)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises several unrelated types for a bad graph
        # a graph in memory is named by its size: its bytes in the message could be megabytes
        what = f"a {len(model_path)}-byte model" if isinstance(model_path, bytes) else model_path
        raise ModelError(f"ONNX Runtime cannot load {what}: {type(exc).__name__}") from exc


class ScoringModel:
    """An ONNX model plus its card, verified against each other; scores whole feature
    matrices at once."""

    def __init__(self, model_dir: Path, feature_names: tuple[str, ...] = FEATURE_NAMES) -> None:
        self.path = model_dir
        self.card = card = read_card(model_dir)
        check_card(card)
        self.version: str = card["version"]
        self.kind: str = str(card.get("kind", ""))
        if tuple(card["feature_names"]) != feature_names:
            raise ModelError(
                f"model {self.version} was trained on different features than this code computes;"
                " retrain it with `riskctl train`"
            )
        onnx_path = model_dir / "model.onnx"
        if not onnx_path.is_file():
            raise ModelError(f"model version {self.version} has no model.onnx in {model_dir}")
        digest = file_sha256(onnx_path)
        if digest != card["onnx"]["sha256"]:
            raise ModelError(
                f"{onnx_path} does not match its card (SHA-256 {digest[:12]}..., card says "
                f"{card['onnx']['sha256'][:12]}...): truncated or replaced; re-export the model"
            )
        self._session = open_session(onnx_path)
        actual = io_spec(self._session)
        expected = {"inputs": card["onnx"]["inputs"], "outputs": card["onnx"]["outputs"]}
        if actual != expected:
            raise ModelError(
                f"{onnx_path} has inputs and outputs other than its card records; re-export it"
            )
        onnx_meta = card["onnx"]
        self._input = onnx_meta["input"]
        self._output = onnx_meta["output"]
        self._positive = int(onnx_meta["positive_class_index"])
        names = {o["name"] for o in actual["outputs"]}
        if self._output not in names or [i["name"] for i in actual["inputs"]] != [self._input]:
            raise ModelError(f"{onnx_path} lacks the input or output its card names")
        reasons = card["reasons"]
        self.reasons_method: str = reasons["method"]
        if self.reasons_method == "scorecard":
            self._points = reasons["points_output"]
            if self._points not in names:
                raise ModelError(f"{onnx_path} has no {self._points!r} output for reason codes")
            self._columns = np.asarray(reasons["columns"], dtype=np.int64)
            self._reference = np.asarray(reasons["reference_points"], dtype=np.float64)
            self._codes = pa.array(reasons["codes"], pa.string())
            self._texts = pa.array(reasons["texts"], pa.string())
            self.reason_table: dict[str, str] = dict(
                zip(reasons["codes"], reasons["texts"], strict=True)
            )
        else:
            self._fill = np.asarray(reasons["fill"], dtype=np.float64)
            self._center = np.asarray(reasons["center"], dtype=np.float64)
            self._scale = np.asarray(reasons["scale"], dtype=np.float64)
            self._coef = np.asarray(reasons["coef"], dtype=np.float64)
            self._codes = pa.array(feature_names, pa.string())
            self._texts = self._codes
            self.reason_table = {name: name for name in feature_names}
        self._code_list: list[str] = self._codes.to_pylist()
        self._text_list: list[str] = self._texts.to_pylist()

    def _run(self, features: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        matrix = np.ascontiguousarray(features, dtype=np.float32)
        return self._session.run(outputs, {self._input: matrix})

    def predict_pd(self, features: np.ndarray) -> np.ndarray:
        """Probability of default for each row of an ``(n, n_features)`` matrix."""
        if len(features) == 0:
            return np.empty(0, dtype=np.float64)
        (probabilities,) = self._run(features, [self._output])
        return probabilities[:, self._positive].astype(np.float64)

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Linear models: each feature's additive push on the log-odds, relative to the
        training centre."""
        filled = np.where(np.isnan(features), self._fill, features)
        return self._coef * (filled - self._center) / self._scale

    def explain(
        self, features: np.ndarray, top: int
    ) -> tuple[np.ndarray, pa.ListArray, pa.ListArray]:
        """PD, reason codes and their texts for each row, from one ONNX run.

        A scorecard's reasons are the characteristics that lose the most points against the
        card's reference points of each (its neutral attribute, WoE 0: see
        ``Scorecard.reference_points``), at most ``top``, none that loses nothing. A
        characteristic whose value is missing is cited only by its "not supplied" code, whose
        points are those of the missing bin itself.
        """
        features = np.asarray(features, dtype=np.float64)
        if len(features) == 0:
            empty = pa.array([], pa.list_(pa.string()))
            return np.empty(0, dtype=np.float64), empty, empty
        pd, index, picked = self._reasons(features, top)
        flat = index[picked]
        return pd, _lists(self._codes, flat, picked), _lists(self._texts, flat, picked)

    def explain_rows(
        self, features: np.ndarray, top: int
    ) -> tuple[np.ndarray, list[list[str]], list[list[str]]]:
        """As :meth:`explain`, the reasons as Python lists: for a few rows (one request),
        building Arrow arrays costs more than the model run itself."""
        features = np.asarray(features, dtype=np.float64)
        if len(features) == 0:
            return np.empty(0, dtype=np.float64), [], []
        pd, index, picked = self._reasons(features, top)
        codes, texts = self._code_list, self._text_list
        rows = [row[keep].tolist() for row, keep in zip(index, picked, strict=True)]
        return pd, [[codes[j] for j in r] for r in rows], [[texts[j] for j in r] for r in rows]

    def _reasons(self, features: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PD; per row the index into the code and text tables of each of the ``top``
        strongest reasons, and which of them lose anything."""
        if self.reasons_method != "scorecard":
            pd = self.predict_pd(features)
            order, picked = _top(self.contributions(features), top)
            return pd, order, picked
        probabilities, points = self._run(features, [self._output, self._points])
        pd = probabilities[:, self._positive].astype(np.float64)
        order, picked = _top(self._reference - points, top)
        missing = np.isnan(features[:, self._columns])
        index = order + len(self._columns) * np.take_along_axis(missing, order, axis=1)
        return pd, index, picked

    def reason_codes(self, features: np.ndarray, top: int) -> pa.ListArray:
        """Per row, up to ``top`` reason codes, strongest first."""
        return self.explain(features, top)[1]


def _top(loss: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the ``top`` largest losses and which of them lose anything."""
    order = np.argsort(-loss, axis=1, kind="stable")[:, :top]
    return order, np.take_along_axis(loss, order, axis=1) > _REASON_EPS


def _lists(values: pa.Array, flat: np.ndarray, picked: np.ndarray) -> pa.ListArray:
    # Built column-wise: one flat array plus offsets, no per-row Python lists.
    offsets = np.zeros(len(picked) + 1, dtype=np.int32)
    np.cumsum(picked.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(flat, pa.int32())))


def load_model(
    models_dir: Path,
    version: str | None = None,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    kind: str | None = None,
) -> ScoringModel:
    """The given version, or the current one of ``kind``; a clear :class:`ModelError` when
    there is none or it fails verification."""
    chosen = version or current_version(models_dir, kind)
    if chosen is None:
        what = f"{kind} model" if kind else "model"
        raise ModelError(f"no {what} in {models_dir}; run `riskctl train` first")
    model_dir = models_dir / chosen
    if "/" in chosen or chosen in (".", "..") or not (model_dir / "card.json").is_file():
        raise ModelError(f"model version {chosen!r} not found in {models_dir}")
    model = ScoringModel(model_dir, feature_names)
    if kind is not None and model.kind != kind:
        raise ModelError(f"model version {chosen} is a {model.kind or 'other'} model, not {kind}")
    return model


def load_live_model(models_dir: Path) -> ScoringModel | None:
    """The current behavioural model, or ``None`` when none has been trained yet."""
    behaviour = models_dir / BEHAVIOUR_DIR
    if current_version(behaviour) is None:
        return None
    return load_model(behaviour, feature_names=BEHAVIOUR_FEATURE_NAMES)


class ChampionWatch:
    """Hot reload: the model a kind's ``CURRENT`` pointer names, re-read between micro-batches.

    :meth:`current` is called once at the start of each batch and the whole batch is scored by
    the model it returns, so every row carries the version that scored it and the switch falls
    between two batches: no event is lost or scored twice. The pointer (a few bytes) is read at
    most every ``interval_s``. A version that fails verification is not used: the model in use
    goes on scoring and :attr:`refused` says why, until the pointer moves again.
    """

    def __init__(
        self,
        models_dir: Path,
        model: ScoringModel,
        *,
        kind: str | None = None,
        feature_names: tuple[str, ...] = FEATURE_NAMES,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dir = models_dir
        self._kind = kind
        self._features = feature_names
        self._pace = Pace(interval_s, clock)
        self._model = model
        self._seen: str | None = model.version
        self._lock = threading.Lock()
        self.refused: str | None = None

    def current(self) -> ScoringModel:
        with self._lock:  # workers in one process share the watch
            if not self._pace.due():
                return self._model
            try:
                pointed = current_version(self._dir, self._kind)
            except ModelError as exc:
                self.refused = str(exc)
                return self._model
            if pointed is None or pointed == self._seen:
                return self._model
            self._seen = pointed
            try:
                self._model = load_model(self._dir, pointed, self._features, self._kind)
            except ModelError as exc:
                self.refused = str(exc)
                _log.warning("keeping model %s: %s", self._model.version, exc)
            else:
                self.refused = None
                _log.info("now scoring with model %s", pointed)
            return self._model


def behaviour_watch(
    models_dir: Path, model: ScoringModel, interval_s: float = 1.0
) -> ChampionWatch:
    """Hot reload of the behavioural model (live PD): its own directory, pointer and features."""
    return ChampionWatch(
        models_dir / BEHAVIOUR_DIR,
        model,
        feature_names=BEHAVIOUR_FEATURE_NAMES,
        interval_s=interval_s,
    )
