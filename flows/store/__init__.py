"""Where scores land: one :class:`Store` interface over embedded chDB and ClickHouse servers.

Layers, each importing only those below it: ``base`` (the interface and errors), ``url`` (the
parsed URL) and ``journal_logs`` (where a journal's entries are kept), the backends
``embedded`` and ``server`` and the ``journal`` itself, ``migrations`` and ``opener``
(``open_store``).
"""

from flows.store.base import Store, StoreError, StoreUnavailable
from flows.store.opener import Opener, open_store
from flows.store.url import StoreURL, parse_store_url

__all__ = [
    "Opener",
    "Store",
    "StoreError",
    "StoreURL",
    "StoreUnavailable",
    "open_store",
    "parse_store_url",
]
