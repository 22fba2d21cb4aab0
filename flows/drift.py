"""Population stability of live scored events against the model's training reference.

The reference is the one stored in the model card at export: per feature (and for the PD) the
training split's decile bin edges, the share of non-missing training rows in each right-closed
bin ``(edges[i], edges[i + 1]]`` and the share of missing rows. Live rows are binned on those
same edges inside ClickHouse, so only a few counts per feature leave the database. Missing
values count as one more bin, so a field that stops arriving shows up as drift too. The band
mix compares the share of loans per risk band, live against the training split, with both
banded on the card's thresholds.

PSI = sum over bins of (live - reference) * ln(live / reference), shares floored at 1e-4 so an
empty bin gives a large but finite index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from flows.batches import TS_MS
from flows.clock import utc_now
from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES
from flows.settings import DriftSettings
from flows.store.base import Store
from flows.times import Window, iso_utc

PSI_FLOOR = 1e-4
STATUSES = ("ok", "watch", "alert")
MISSING_BIN = -1
_OTHER_MODEL_BIN = -2  # PD of rows scored by another model version: not comparable, dropped


class DriftError(RiskctlError):
    """Drift cannot be measured as asked: no reference, or too few live rows."""


# ---------------------------------------------------------------------------------------------
# PSI on share vectors


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """Population stability index between two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=np.float64), floor, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), floor, None)
    if e.shape != a.shape:
        raise ValueError("PSI needs share vectors over the same bins")
    return float(np.sum((a - e) * np.log(a / e)))


def status_of(value: float, thresholds: DriftSettings) -> str:
    if value >= thresholds.alert:
        return "alert"
    if value >= thresholds.watch:
        return "watch"
    return "ok"


def _worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=STATUSES.index, default="ok")


@dataclass(frozen=True)
class Reference:
    """One training distribution from the card: right-closed bins plus a missing bin."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    nan_share: float = 0.0

    @classmethod
    def from_card(cls, name: str, entry: Mapping[str, Any]) -> Reference:
        edges = tuple(float(e) for e in entry["edges"])
        proportions = tuple(float(p) for p in entry["proportions"])
        if len(edges) != len(proportions) + 1 or edges[0] != -math.inf or edges[-1] != math.inf:
            raise DriftError(f"model card reference for {name!r} has malformed bins")
        if entry.get("closed", "right") != "right":
            raise DriftError(f"model card reference for {name!r} is not right-closed")
        return cls(edges, proportions, float(entry.get("nan_share", 0.0)))

    @property
    def inner_edges(self) -> tuple[float, ...]:
        return self.edges[1:-1]

    def shares(self) -> list[float]:
        """Shares of all rows per value bin, then the missing share; they sum to 1."""
        present = 1.0 - self.nan_share
        return [p * present for p in self.proportions] + [self.nan_share]

    def labels(self) -> list[str]:
        inner = self.inner_edges
        if not inner:
            return ["all values", "missing"]
        labels = [f"≤ {_num(inner[0])}"]
        labels += [f"({_num(lo)}, {_num(hi)}]" for lo, hi in itertools.pairwise(inner)]
        return [*labels, f"> {_num(inner[-1])}", "missing"]


def _num(value: float) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True)
class BandReference:
    """The training split's share of loans per risk band, banded on the card's thresholds."""

    names: tuple[str, ...]
    thresholds: tuple[float, ...]
    shares: tuple[float, ...]

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> BandReference | None:
        mix = card.get("band_mix")
        if not mix:
            return None  # cards exported before the band mix was recorded
        names = tuple(card["bands"])
        return cls(names, tuple(float(t) for t in card["thresholds"]), tuple(mix[n] for n in names))


def card_references(card: Mapping[str, Any]) -> dict[str, Reference]:
    """Every feature's reference plus the PD's, keyed as the scored_events columns are named."""
    stored = card.get("reference")
    if not stored:
        raise DriftError(
            f"model {card.get('version', '?')} has no training reference in its card; "
            "re-export it with `riskctl export`"
        )
    missing = [name for name in (*FEATURE_NAMES, "pd") if name not in stored]
    if missing:
        raise DriftError(f"model card reference lacks {', '.join(missing)}; re-export the model")
    return {name: Reference.from_card(name, stored[name]) for name in (*FEATURE_NAMES, "pd")}


# ---------------------------------------------------------------------------------------------
# SQL


def _float_literal(value: float) -> str:
    if not math.isfinite(value):
        raise DriftError(f"bin edge {value} is not finite")
    return repr(float(value))


def bin_expression(column: str, edges: Sequence[float]) -> str:
    """SQL for the 0-based right-closed bin of ``column`` given the inner edges; -1 if NaN.

    The number of edges strictly below the value is its bin: a value equal to an edge stays
    in the bin that edge closes, as numpy's ``searchsorted(side="left")`` places it in training.
    """
    if not edges:
        counted = "toInt64(0)"
    else:
        literal = ", ".join(_float_literal(e) for e in edges)
        counted = f"toInt64(arrayCount(e -> e < `{column}`, [{literal}]))"
    return f"if(isNaN(`{column}`), {MISSING_BIN}, {counted})"


# The card calls the model's output "pd"; scored_events names its horizon (migration 0120).
_STORED_AS = {"pd": "pd_lifetime"}


def band_expression(thresholds: Sequence[float]) -> str:
    """SQL for the band index of the stored lifetime PD as the flow bands it: thresholds at or
    below the PD."""
    literal = ", ".join(_float_literal(t) for t in thresholds)
    return f"toInt64(arrayCount(t -> t <= pd_lifetime, [{literal}]))"


def live_bins_sql(
    references: Mapping[str, Reference], bands: BandReference | None, table: str = "scored_events"
) -> str:
    """One scan of the window: ``(name, bin, rows)`` for every monitored quantity.

    Takes ``{start}``, ``{end}`` and ``{model_version}`` parameters. Feature rows come from
    every model version (the features do not depend on it); the PD and the band mix only from
    rows the card's own model scored.
    """
    items = []
    for name, ref in references.items():
        expr = bin_expression(_STORED_AS.get(name, name), ref.inner_edges)
        if name == "pd":
            expr = f"if(model_version = {{model_version:String}}, {expr}, {_OTHER_MODEL_BIN})"
        items.append(f"('{name}', {expr})")
    if bands is not None:
        items.append(
            f"('band_mix', if(model_version = {{model_version:String}}, "
            f"{band_expression(bands.thresholds)}, {_OTHER_MODEL_BIN}))"
        )
    joined = ",\n        ".join(items)
    # No FINAL: the writer keeps keys unique, and a rare duplicate cannot move a share by much,
    # while FINAL would merge the whole table on every check.
    return f"""
SELECT item.1 AS name, item.2 AS bin, count() AS rows
FROM
(
    SELECT arrayJoin([
        {joined}
    ]) AS item
    FROM {table}
    WHERE event_time >= {{start:DateTime64(3, 'UTC')}} AND event_time < {{end:DateTime64(3, 'UTC')}}
)
WHERE item.2 != {_OTHER_MODEL_BIN}
GROUP BY name, bin
ORDER BY name, bin
"""


def live_counts(table: pa.Table) -> dict[str, dict[int, int]]:
    counts: dict[str, dict[int, int]] = {}
    for name, bin_, rows in zip(
        table.column("name").to_pylist(),
        table.column("bin").to_pylist(),
        table.column("rows").to_pylist(),
        strict=True,
    ):
        counts.setdefault(name, {})[int(bin_)] = int(rows)
    return counts


def shares_from_counts(
    counts: Mapping[int, int], value_bins: int, with_missing: bool
) -> list[float]:
    """Live shares in reference order: value bins, then the missing bin if there is one."""
    total = sum(counts.values())
    order = list(range(value_bins)) + ([MISSING_BIN] if with_missing else [])
    return [counts.get(b, 0) / total if total else 0.0 for b in order]


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class DriftRow:
    kind: str  # feature | score | band_mix
    name: str
    psi: float
    status: str
    live_rows: int
    labels: list[str]
    reference_shares: list[float]
    live_shares: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "feature": self.name,
            "psi": self.psi,
            "status": self.status,
            "live_rows": self.live_rows,
            "bins": self.labels,
            "reference_shares": self.reference_shares,
            "live_shares": self.live_shares,
        }


@dataclass(frozen=True)
class DriftResult:
    computed_at: datetime
    window: Window
    model_version: str
    thresholds: DriftSettings
    live_rows: int
    rows: list[DriftRow]
    skipped: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return _worst([row.status for row in self.rows])

    @property
    def alerts(self) -> list[DriftRow]:
        return [row for row in self.rows if row.status == "alert"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "computed_at": iso_utc(self.computed_at, "milliseconds"),
            "window": {
                "start": iso_utc(self.window.start, "milliseconds"),
                "end": iso_utc(self.window.end, "milliseconds"),
            },
            "model_version": self.model_version,
            "thresholds": {"watch": self.thresholds.watch, "alert": self.thresholds.alert},
            "live_rows": self.live_rows,
            "status": self.status,
            "results": [row.as_dict() for row in self.rows],
            "skipped": self.skipped,
        }

    def table(self) -> pa.Table:
        """Rows for the ``drift_psi`` table."""
        n = len(self.rows)
        return pa.table(
            {
                "computed_at": pa.array([self.computed_at] * n, TS_MS),
                "window_start": pa.array([self.window.start] * n, TS_MS),
                "window_end": pa.array([self.window.end] * n, TS_MS),
                "model_version": pa.array([self.model_version] * n, pa.string()),
                "kind": pa.array([r.kind for r in self.rows], pa.string()),
                "feature": pa.array([r.name for r in self.rows], pa.string()),
                "psi": pa.array([r.psi for r in self.rows], pa.float64()),
                "status": pa.array([r.status for r in self.rows], pa.string()),
                "live_rows": pa.array([r.live_rows for r in self.rows], pa.uint64()),
                "watch_threshold": pa.array([self.thresholds.watch] * n, pa.float64()),
                "alert_threshold": pa.array([self.thresholds.alert] * n, pa.float64()),
                "bins": pa.array([r.labels for r in self.rows], pa.list_(pa.string())),
                "reference_shares": pa.array(
                    [r.reference_shares for r in self.rows], pa.list_(pa.float64())
                ),
                "live_shares": pa.array([r.live_shares for r in self.rows], pa.list_(pa.float64())),
            }
        )


def compare(
    references: Mapping[str, Reference],
    bands: BandReference | None,
    counts: Mapping[str, Mapping[int, int]],
    thresholds: DriftSettings,
) -> tuple[list[DriftRow], list[str]]:
    """PSI rows for every quantity with at least ``min_rows`` live rows; the rest are skipped."""
    rows: list[DriftRow] = []
    skipped: list[str] = []
    for name, ref in references.items():
        found = counts.get(name, {})
        total = sum(found.values())
        if total < thresholds.min_rows:
            skipped.append(f"{name}: {total} live rows scored by this model")
            continue
        live = shares_from_counts(found, len(ref.proportions), with_missing=True)
        expected = ref.shares()
        value = psi(expected, live)
        rows.append(
            DriftRow(
                kind="score" if name == "pd" else "feature",
                name=name,
                psi=value,
                status=status_of(value, thresholds),
                live_rows=total,
                labels=ref.labels(),
                reference_shares=expected,
                live_shares=live,
            )
        )
    if bands is None:
        skipped.append("band_mix: the model card has no training band mix; re-export the model")
    else:
        found = counts.get("band_mix", {})
        total = sum(found.values())
        if total < thresholds.min_rows:
            skipped.append(f"band_mix: {total} live rows scored by this model")
        else:
            live = shares_from_counts(found, len(bands.names), with_missing=False)
            value = psi(bands.shares, live)
            rows.append(
                DriftRow(
                    kind="band_mix",
                    name="band_mix",
                    psi=value,
                    status=status_of(value, thresholds),
                    live_rows=total,
                    labels=list(bands.names),
                    reference_shares=list(bands.shares),
                    live_shares=live,
                )
            )
    return rows, skipped


def measure(
    store: Store,
    card: Mapping[str, Any],
    window: Window,
    thresholds: DriftSettings,
    now: datetime | None = None,
) -> DriftResult:
    """PSI of every feature, the PD and the band mix in ``window`` against the card."""
    references = card_references(card)
    bands = BandReference.from_card(card)
    version = str(card["version"])
    result = store.query_arrow(
        live_bins_sql(references, bands), {**window.params(), "model_version": version}
    )
    counts = live_counts(result)
    live_rows = max((sum(c.values()) for n, c in counts.items() if n in FEATURE_NAMES), default=0)
    if live_rows < thresholds.min_rows:
        raise DriftError(
            f"only {live_rows} scored events between {iso_utc(window.start, 'milliseconds')} and "
            f"{iso_utc(window.end, 'milliseconds')};"
            f" drift needs at least {thresholds.min_rows} (widen the window or lower --min-rows)"
        )
    rows, skipped = compare(references, bands, counts, thresholds)
    return DriftResult(
        computed_at=now or utc_now(),
        window=window,
        model_version=version,
        thresholds=thresholds,
        live_rows=live_rows,
        rows=rows,
        skipped=skipped,
    )


def record(store: Store, result: DriftResult) -> None:
    """Append the result to ``drift_psi`` for the ops dashboard."""
    store.insert_arrow("drift_psi", result.table())
