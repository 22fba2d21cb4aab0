"""Store URLs: ``chdb:///path[?database=name]`` or ``http(s)://user:password@host:port/db``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from flows.errors import UsageError
from flows.store.base import Store, StoreError

DEFAULT_DATABASE = "riskctl"


class StoreURLError(UsageError, StoreError):
    """The store URL (--store, RISKCTL_STORE) cannot name a store: the user's input, exit 2."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL; repr() and str() never show the password."""

    scheme: str
    database: str
    path: Path | None = None
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = field(default="", repr=False)

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def redacted(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}?database={self.database}"
        auth = f"{self.username}:***@" if self.password else f"{self.username}@"
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted()


def parse_store_url(url: str) -> StoreURL:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        raw_path = unquote(parts.netloc + parts.path)
        if not raw_path:
            raise StoreURLError(f"store URL {url!r} has no directory: use chdb:///path/to/dir")
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        return StoreURL(scheme="chdb", database=_database(database), path=Path(raw_path))
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise StoreURLError(
                "store URL has no host: use http://user:password@host:8123/database"
            )
        database = parts.path.strip("/") or DEFAULT_DATABASE
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError:
            raise StoreURLError("store URL has a bad port: use a number from 1 to 65535") from None
        return StoreURL(
            scheme=parts.scheme,
            database=_database(database),
            host=parts.hostname,
            port=port,
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
        )
    scheme = parts.scheme or "(none)"
    raise StoreURLError(f"unknown store URL scheme {scheme!r}: use chdb:///path or http(s)://host")


def check_store_url(url: str) -> StoreURL:
    """The parsed URL, once it is known to name a usable store as far as can be seen without
    touching anything: an embedded store's directory must not lie under a file."""
    parsed = parse_store_url(url)
    if parsed.path is not None:
        existing = next((p for p in (parsed.path, *parsed.path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise StoreURLError(
                f"cannot use {parsed.path} as the embedded store's directory: {existing} is a file"
            )
    return parsed


def _database(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreURLError(f"bad database name {name!r}: letters, digits and _ only")
    return name


def open_store(url: str, *, create_database: bool = True) -> Store:
    """Open the store a URL names; the database is created if missing and made current."""
    parsed = parse_store_url(url)
    if parsed.embedded:
        assert parsed.path is not None
        try:
            parsed.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreURLError(
                f"cannot use {parsed.path} as the embedded store's directory: {exc.strerror}"
            ) from None
        from flows.store.embedded import EmbeddedStore

        return EmbeddedStore(parsed, create_database=create_database)
    from flows.store.server import ServerStore

    return ServerStore(parsed, create_database=create_database)
