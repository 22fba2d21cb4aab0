"""Answers kept for retries carrying an ``Idempotency-Key``: the same key and body get the
same answer; the same key with another body is refused. Bounded: the oldest keys go first."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kept:
    body_sha256: bytes
    status: int
    content: bytes


class IdempotencyStore:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[str, Kept] = OrderedDict()

    @staticmethod
    def digest(body: bytes) -> bytes:
        return hashlib.sha256(body).digest()

    def get(self, key: str) -> Kept | None:
        return self._kept.get(key)

    def put(self, key: str, kept: Kept) -> None:
        self._kept[key] = kept
        if len(self._kept) > self.capacity:
            self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)
