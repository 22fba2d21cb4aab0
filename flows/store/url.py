"""Store URLs: ``chdb:///path[?database=name]`` or ``http(s)://user:password@host:port/db``.

The bottom of the store package: a URL is parsed once, where settings are read, into a
:class:`StoreURL`; the backends and :func:`flows.store.opener.open_store` take that value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from flows.errors import UsageError
from flows.secret import Secret
from flows.store.base import StoreError

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
    password: Secret = field(default_factory=lambda: Secret(""))

    @staticmethod
    def embedded_at(path: Path, database: str = DEFAULT_DATABASE) -> StoreURL:
        return StoreURL(scheme="chdb", database=_database(database), path=path)

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def redacted(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}?database={self.database}"
        auth = f"{self.username}:***@" if self.password else f"{self.username}@"
        return f"{self.scheme}://{auth}{self._netloc_host}:{self.port}/{self.database}"

    def reveal(self) -> str:
        """The URL with its password, for handing to another process (``--store``); never for
        printing. Parsing it gives this value back."""
        if self.embedded:
            return f"chdb://{quote(str(self.path))}?database={self.database}"
        password = self.password.reveal()
        auth = quote(self.username, safe="") + (":" + quote(password, safe="") if password else "")
        return f"{self.scheme}://{auth}@{self._netloc_host}:{self.port}/{self.database}"

    @property
    def _netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address

    def check_directory(self) -> None:
        """Refuse, without touching anything, an embedded store whose directory lies under a
        file: said before any work rather than when the store is first opened."""
        if self.path is None:
            return
        existing = next((p for p in (self.path, *self.path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise StoreURLError(
                f"cannot use {self.path} as the embedded store's directory: {existing} is a file"
            )

    def check_shared(self) -> None:
        """Refuse a store that several processes cannot share: chDB serves one process."""
        if self.embedded:
            raise StoreURLError(
                "the embedded chDB store belongs to one process; several processes need a "
                "ClickHouse server (--store http://user:password@host:8123/db), or use --workers "
                "for several workers in this process"
            )

    def __str__(self) -> str:
        return self.redacted()


class URLNamed:
    """What a backend says about itself, from the URL it was opened with."""

    _url: StoreURL

    @property
    def description(self) -> str:
        """Where this store is, with any password redacted."""
        return self._url.redacted()

    @property
    def database(self) -> str:
        return self._url.database

    @property
    def exclusive(self) -> bool:
        """Whether no other process can write the store while this one has it open."""
        # chDB serves a data directory to one process; a server takes writes from anyone.
        return self._url.embedded


def parse_store_url(url: str) -> StoreURL:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        raw_path = unquote(parts.netloc + parts.path)
        if not raw_path:
            raise StoreURLError(f"store URL {url!r} has no directory: use chdb:///path/to/dir")
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        return StoreURL.embedded_at(Path(raw_path), database)
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
            password=Secret(unquote(parts.password or "")),
        )
    scheme = parts.scheme or "(none)"
    raise StoreURLError(f"unknown store URL scheme {scheme!r}: use chdb:///path or http(s)://host")


def _database(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreURLError(f"bad database name {name!r}: letters, digits and _ only")
    return name
