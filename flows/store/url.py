"""Store URLs: ``chdb:///path[?database=name]`` or ``http(s)://user:password@host:port/db``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from flows.store.base import Store, StoreError

DEFAULT_DATABASE = "riskctl"


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    database: str
    path: Path | None = None
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def redacted(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}?database={self.database}"
        auth = f"{self.username}:***@" if self.password else f"{self.username}@"
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"


def parse_store_url(url: str) -> StoreURL:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        raw_path = unquote(parts.netloc + parts.path)
        if not raw_path:
            raise StoreError(f"store URL {url!r} has no directory: use chdb:///path/to/dir")
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        return StoreURL(scheme="chdb", database=_database(database), path=Path(raw_path))
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise StoreError("store URL has no host: use http://user:password@host:8123/database")
        database = parts.path.strip("/") or DEFAULT_DATABASE
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError as exc:
            raise StoreError(f"store URL has a bad port: {exc}") from exc
        return StoreURL(
            scheme=parts.scheme,
            database=_database(database),
            host=parts.hostname,
            port=port,
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
        )
    scheme = parts.scheme or "(none)"
    raise StoreError(f"unknown store URL scheme {scheme!r}: use chdb:///path or http(s)://host")


def _database(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreError(f"bad database name {name!r}: letters, digits and _ only")
    return name


def open_store(url: str, *, create_database: bool = True) -> Store:
    """Open the store a URL names; the database is created if missing and made current."""
    parsed = parse_store_url(url)
    if parsed.embedded:
        from flows.store.embedded import EmbeddedStore

        return EmbeddedStore(parsed, create_database=create_database)
    from flows.store.server import ServerStore

    return ServerStore(parsed, create_database=create_database)
