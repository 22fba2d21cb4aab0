"""Settings, read once at the edge (CLI, flow factory) and passed down as one object.

Every value can be set through a ``RISKCTL_*`` environment variable; the CLI's options override
them. Nothing below the edge reads the environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flows.errors import UsageError
from flows.store.url import StoreURL, StoreURLError, parse_store_url

DEFAULT_HOME = ".riskctl"

# PD upper bounds of each band, lowest first; a PD at or above the last bound is the last band.
DEFAULT_BAND_NAMES = ("very_low", "low", "medium", "high", "very_high")
DEFAULT_BAND_THRESHOLDS = (0.02, 0.04, 0.08, 0.15)

# The origination models: "applicant" uses only what a lender has at application; "priced"
# also uses LendingClub's own grade and rate, for buyers of loans already graded.
MODEL_KINDS = ("applicant", "priced")
# Applicant by default: it scores any valid application, priced or not, and every reason it
# gives is about the applicant, so a lender can send it; a loan's own grade is the lender's
# pricing, not a reason it may give an applicant.
DEFAULT_MODEL_KIND = "applicant"


class SettingsError(UsageError, ValueError):
    """A setting has a value riskctl cannot use (the user's input: exit code 2)."""


@dataclass(frozen=True)
class Bands:
    names: tuple[str, ...] = DEFAULT_BAND_NAMES
    thresholds: tuple[float, ...] = DEFAULT_BAND_THRESHOLDS

    def __post_init__(self) -> None:
        if len(self.names) != len(self.thresholds) + 1:
            raise SettingsError("risk bands need exactly one more name than thresholds")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise SettingsError("risk band thresholds must be strictly increasing")
        if not all(0.0 < t < 1.0 for t in self.thresholds):
            raise SettingsError("risk band thresholds must lie strictly between 0 and 1")


@dataclass(frozen=True)
class KafkaSettings:
    brokers: str = "127.0.0.1:9092"
    applications_topic: str = "loan-applications"
    repayments_topic: str = "loan-repayments"
    dead_letter_topic: str = "loan-dead-letters"
    partitions: int = 4
    replication_factor: int = 1
    # Most messages one partition read hands to the flow; each read becomes one micro-batch.
    # A read returns at once with whatever has arrived, so this bounds a batch without
    # delaying a quiet topic. 20k ran ~15% faster than 5k on the mixed stream (fewer, larger
    # batches through scoring and the store).
    consume_batch_size: int = 20_000
    # How long the broker may hold a consumer's fetch while the partition has nothing new
    # (librdkafka's fetch.wait.max.ms). A Kafka broker answers as soon as data arrives, so
    # this only paces the fetches of a quiet partition; Tansu holds each fetch for the whole
    # wait, and its fetches cost CPU: at 10,000 events/s on two cores, 50 ms made Tansu use
    # 9.3 s of CPU in 20 s against 5.2 s at 200 ms, and event -> queryable p99 was
    # 793-1,220 ms against 718-906 ms at 100 ms (six pairs). 100 ms bounds a quiet topic's
    # wait well inside the one-second target.
    fetch_wait_ms: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.fetch_wait_ms <= 5_000:
            raise SettingsError(
                f"RISKCTL_KAFKA_FETCH_WAIT_MS must be 1 to 5000 ms, not {self.fetch_wait_ms}"
            )
        if self.partitions < 1:
            raise SettingsError(
                "Kafka topics need at least one partition (--partitions, RISKCTL_KAFKA_PARTITIONS)"
            )
        if not self.brokers.strip():
            raise SettingsError("no Kafka brokers given")

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.applications_topic, self.repayments_topic, self.dead_letter_topic)


@dataclass(frozen=True)
class DriftSettings:
    """PSI thresholds (at or above ``watch``: look; at or above ``alert``: act) and the fewest
    live rows worth comparing, since PSI on a handful of rows is mostly sampling noise."""

    watch: float = 0.1
    alert: float = 0.25
    min_rows: int = 500

    def __post_init__(self) -> None:
        if not 0.0 < self.watch < self.alert:
            raise SettingsError(
                f"drift thresholds need 0 < watch < alert, got {self.watch} and {self.alert}"
            )
        if self.min_rows < 1:
            raise SettingsError("drift needs at least 1 live row (min_rows)")


@dataclass(frozen=True)
class S3Settings:
    """The archive's S3 (or S3-compatible, e.g. MinIO at ``endpoint_url``) location.

    Credentials left unset fall back to boto3's own chain (AWS_* variables, profiles, roles).
    """

    bucket: str | None = None
    prefix: str = "riskctl"
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)  # never printed


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME))
    # Parsed here, once: a URL given as text (RISKCTL_STORE, --store) becomes a StoreURL, whose
    # password is a Secret. None: the embedded store under the home.
    store_url: StoreURL | str | None = None
    lgd: float = 0.45
    bands: Bands = field(default_factory=Bands)
    # Events per micro-batch from files (and archives). Each batch costs fixed work (an ONNX
    # call, Arrow tables, a part per table and view in ClickHouse); 40k amortizes it: the mixed
    # stream ran ~8% faster than at 20k, and no faster at 80k.
    batch_size: int = 40_000
    max_payload_bytes: int = 16 * 1024
    reason_codes: int = 3
    model_kind: str = DEFAULT_MODEL_KIND
    # How long the sink keeps retrying an unreachable store before the run fails.
    store_deadline_s: float = 300.0
    # How long and up to how many events the sink gathers batches before one insert (each
    # insert costs ~100-200 ms whatever its size); the time bounds the latency it adds. Off
    # (0) by default: a run's writes then follow its micro-batches, which the recovery,
    # stop and hot-reload guarantees are tested on; a steady Kafka trickle sets e.g. 200.
    sink_linger_ms: float = 0.0
    sink_linger_events: int = 20_000
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    # Shadow scoring: the registry's challenger of the model kind scores beside the champion.
    shadow: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.store_url, str):
            parsed = parse_store_url(self.store_url) if self.store_url else None
            object.__setattr__(self, "store_url", parsed)
        if not 0.0 < self.lgd <= 1.0:
            raise SettingsError(f"LGD (RISKCTL_LGD) must be in (0, 1], got {self.lgd}")
        if self.batch_size < 1:
            raise SettingsError("batch size must be at least 1 (--batch-size, RISKCTL_BATCH_SIZE)")
        if not self.store_deadline_s > 0:
            raise SettingsError("RISKCTL_STORE_DEADLINE_S must be a positive number of seconds")
        if not (self.sink_linger_ms >= 0 and self.sink_linger_events >= 0):
            raise SettingsError(
                "RISKCTL_SINK_LINGER_MS and RISKCTL_SINK_LINGER_EVENTS cannot be negative"
            )
        if self.model_kind not in MODEL_KINDS:
            raise SettingsError(
                f"model kind must be one of {', '.join(MODEL_KINDS)}, got {self.model_kind!r}"
            )

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def store(self) -> StoreURL:
        """The store: the one set, or else the embedded store under the home."""
        if isinstance(self.store_url, StoreURL):
            return self.store_url
        return StoreURL.embedded_at((self.home / "store").resolve())

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields replaced, skipping the ones left as ``None``."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _floats(name: str, text: str) -> tuple[float, ...]:
    return tuple(_finite(name, part) for part in text.split(",") if part.strip())


# The errors name the variable and what it needs, rather than passing on Python's parse error.
def _finite(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {text.strip()!r}")
    return value


def _int(env: dict[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {text.strip()!r}") from None


def _float(env: dict[str, str], name: str, default: float) -> float:
    return _finite(name, env.get(name, str(default)))


def _flag(env: dict[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0 (true or false), got {text!r}")


def _store_url(env: dict[str, str]) -> StoreURL | None:
    text = env.get("RISKCTL_STORE")
    if not text:
        return None
    try:
        return parse_store_url(text)
    except StoreURLError as exc:
        raise StoreURLError(f"RISKCTL_STORE: {exc}") from None


def from_env(env: dict[str, str] | None = None) -> Settings:
    """Settings from ``RISKCTL_*`` variables; unset ones keep their defaults."""
    env = dict(os.environ if env is None else env)
    defaults = Settings()
    bands = defaults.bands
    kafka = defaults.kafka
    if "RISKCTL_BAND_THRESHOLDS" in env:
        thresholds = _floats("RISKCTL_BAND_THRESHOLDS", env["RISKCTL_BAND_THRESHOLDS"])
        bands = Bands(names=bands.names, thresholds=thresholds)
    try:
        kafka = KafkaSettings(
            brokers=env.get("RISKCTL_KAFKA_BROKERS", kafka.brokers),
            applications_topic=env.get("RISKCTL_TOPIC_APPLICATIONS", kafka.applications_topic),
            repayments_topic=env.get("RISKCTL_TOPIC_REPAYMENTS", kafka.repayments_topic),
            dead_letter_topic=env.get("RISKCTL_TOPIC_DEAD_LETTERS", kafka.dead_letter_topic),
            partitions=_int(env, "RISKCTL_KAFKA_PARTITIONS", kafka.partitions),
            consume_batch_size=_int(env, "RISKCTL_KAFKA_BATCH_SIZE", kafka.consume_batch_size),
            fetch_wait_ms=_int(env, "RISKCTL_KAFKA_FETCH_WAIT_MS", kafka.fetch_wait_ms),
        )
        return Settings(
            home=Path(env.get("RISKCTL_HOME", DEFAULT_HOME)).expanduser(),
            store_url=_store_url(env),
            lgd=_float(env, "RISKCTL_LGD", defaults.lgd),
            bands=bands,
            batch_size=_int(env, "RISKCTL_BATCH_SIZE", defaults.batch_size),
            model_kind=env.get("RISKCTL_MODEL_KIND", defaults.model_kind),
            shadow=_flag(env, "RISKCTL_SHADOW"),
            kafka=kafka,
            store_deadline_s=_float(env, "RISKCTL_STORE_DEADLINE_S", defaults.store_deadline_s),
            sink_linger_ms=_float(env, "RISKCTL_SINK_LINGER_MS", defaults.sink_linger_ms),
            sink_linger_events=_int(env, "RISKCTL_SINK_LINGER_EVENTS", defaults.sink_linger_events),
            drift=DriftSettings(
                watch=_float(env, "RISKCTL_DRIFT_WATCH", DriftSettings.watch),
                alert=_float(env, "RISKCTL_DRIFT_ALERT", DriftSettings.alert),
                min_rows=_int(env, "RISKCTL_DRIFT_MIN_ROWS", DriftSettings.min_rows),
            ),
            s3=S3Settings(
                bucket=env.get("RISKCTL_S3_BUCKET") or None,
                prefix=env.get("RISKCTL_S3_PREFIX", S3Settings.prefix).strip("/"),
                endpoint_url=env.get("RISKCTL_S3_ENDPOINT_URL") or None,
                region=env.get("RISKCTL_S3_REGION") or None,
                access_key_id=env.get("RISKCTL_S3_ACCESS_KEY_ID") or None,
                secret_access_key=env.get("RISKCTL_S3_SECRET_ACCESS_KEY") or None,
            ),
        )
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"bad RISKCTL_* setting: {exc}") from exc
