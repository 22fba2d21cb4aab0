"""The one way to open a store: the backend a parsed URL names, imported only when used (each
backend loads a heavy engine or client)."""

from __future__ import annotations

from collections.abc import Callable

from flows.store.base import Store
from flows.store.url import StoreURL, StoreURLError

# What the run's pieces are handed: opens the run's store, again after a failure if need be.
Opener = Callable[[], Store]


def open_store(url: StoreURL, *, create_database: bool = True) -> Store:
    """Open the store ``url`` names; the database is created if missing and made current."""
    if url.embedded:
        assert url.path is not None
        try:
            url.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreURLError(
                f"cannot use {url.path} as the embedded store's directory: {exc.strerror}"
            ) from None
        from flows.store.embedded import EmbeddedStore

        return EmbeddedStore(url, create_database=create_database)
    from flows.store.server import ServerStore

    return ServerStore(url, create_database=create_database)
