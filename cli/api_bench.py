"""`riskctl bench --api`: drive a running decision service with concurrent HTTP clients.

Single decisions are sent open-loop at a fixed rate, and each latency is measured from the
moment its request was due, not when it was sent: a stalled server cannot hide its queue by
slowing the client down (coordinated omission). Batches are sent closed-loop by a few clients
as fast as the service answers them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import numpy as np


@dataclass(frozen=True)
class Run:
    label: str
    requests: int
    decisions: int
    errors: int
    elapsed_s: float
    latencies_s: np.ndarray

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.elapsed_s

    def percentile_ms(self, q: float) -> float:
        if not len(self.latencies_s):
            return float("nan")
        return float(np.percentile(self.latencies_s, q) * 1000)


def _session(token: str, concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def single(
    url: str, token: str, payloads: list[bytes], rate: float, duration_s: float, concurrency: int
) -> Run:
    """``rate`` single decisions a second for ``duration_s``."""
    count = max(1, int(rate * duration_s))
    latencies = np.zeros(count)
    errors = 0
    loop = asyncio.get_running_loop()
    endpoint = f"{url}/v1/decisions"
    async with _session(token, concurrency) as session:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                async with session.post(endpoint, data=payloads[i % len(payloads)]) as r:
                    await r.read()
                    errors += r.status != 200
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies[i] = loop.time() - due

        began = loop.time()
        tasks = []
        for i in range(count):
            due = began + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - began
    return Run(f"single at {rate:,.0f}/s", count, count - errors, errors, elapsed, latencies)


async def batches(
    url: str, token: str, payloads: list[bytes], size: int, duration_s: float, clients: int
) -> Run:
    """Batches of ``size`` from ``clients`` concurrent clients for ``duration_s``."""
    bodies = [
        b'{"applications": [' + b",".join(payloads[i : i + size]) + b"]}"
        for i in range(0, len(payloads) - size + 1, size)
    ]
    latencies: list[float] = []
    errors = 0
    async with _session(token, clients) as session:
        began = time.perf_counter()
        stop = began + duration_s

        async def client(n: int) -> None:
            nonlocal errors
            i = n
            while time.perf_counter() < stop:
                sent = time.perf_counter()
                try:
                    async with session.post(
                        f"{url}/v1/decisions:batch", data=bodies[i % len(bodies)]
                    ) as r:
                        await r.read()
                        errors += r.status != 200
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append(time.perf_counter() - sent)
                i += clients

        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - began
    done = len(latencies) - errors
    return Run(
        f"batch of {size:,}, {clients} clients", len(latencies), done * size, errors, elapsed,
        np.asarray(latencies),
    )  # fmt: skip


def run_all(
    url: str, token: str, payloads: list[bytes], *, rate: float, duration_s: float,
    batch_size: int, clients: int,
) -> list[Run]:  # fmt: skip
    async def both() -> list[Run]:
        # A short warm-up, so connection setup and first-call costs are not measured.
        await single(url, token, payloads, min(rate, 200.0), 1.0, 64)
        return [
            await single(url, token, payloads, rate, duration_s, 256),
            await batches(url, token, payloads, batch_size, duration_s, clients),
        ]

    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.run(both())
    return uvloop.run(both())
