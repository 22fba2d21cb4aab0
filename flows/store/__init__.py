"""Where scores land: one :class:`Store` interface over embedded chDB and ClickHouse servers."""

from flows.store.base import Store, StoreError, StoreUnavailable
from flows.store.url import StoreURL, open_store, parse_store_url

__all__ = ["Store", "StoreError", "StoreURL", "StoreUnavailable", "open_store", "parse_store_url"]
