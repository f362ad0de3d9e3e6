"""REST load: closed-loop clients at a fixed concurrency, and paced open-loop load at a fixed rate.

aiohttp, with the bodies encoded beforehand: the generator shares the machine's cores with
the server (httpx used 0.3 to 0.9 of a core at 100 to 140 requests/s on 2 cores, aiohttp
under 0.1 at 190). The CPU each run used is reported with its result (``client_cpu``, in cores).
"""

from __future__ import annotations

import asyncio
import json
import time

from bench.figures import percentiles

__all__ = ["measure_rest", "rest_load", "rest_paced", "single_bodies"]

HEADERS = {"content-type": "application/json"}


async def rest_load(url: str, bodies: list[bytes], items_per_body: int, concurrency: int, seconds: float) -> dict:
    """Closed-loop load: ``concurrency`` clients, each sending its next body when answered."""
    import aiohttp

    latencies: list[float] = []
    items = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal items, errors
        i = offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            ok = await _post(session, url, body)
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
                items += items_per_body
            else:
                errors += 1

    cpu_before = time.process_time()
    async with _session(concurrency) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "items_per_s": round(items / elapsed, 1), "requests": len(latencies),
            "errors": errors, **percentiles(latencies),
            "client_cpu": round((time.process_time() - cpu_before) / elapsed, 2)}


def _session(connections: int):
    """An aiohttp session of at most ``connections`` connections; a request may take two minutes."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=120))


async def _post(session, url: str, body: bytes) -> bool:
    """One request, answered 200; a dropped connection or a time-out (an overloaded server) is an error."""
    import aiohttp

    try:
        async with session.post(url, data=body, headers=HEADERS) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def rest_paced(url: str, bodies: list[bytes], rate: float, seconds: float, max_open: int = 512) -> dict:
    """Open-loop load: request k is due at ``k / rate`` seconds, whether or not earlier ones were answered.

    Each latency runs from the request's due time, not from when it was sent, so a client that
    falls behind (``max_open`` requests in flight at most) counts its delay against the server
    rather than hiding it (no coordinated omission).
    """
    import aiohttp

    latencies: list[float] = []
    errors = 0
    total = max(1, int(rate * seconds))
    gate = asyncio.Semaphore(max_open)

    async def one(session: aiohttp.ClientSession, k: int, due: float) -> None:
        nonlocal errors
        async with gate:
            ok = await _post(session, url, bodies[k % len(bodies)])
        if ok:
            latencies.append((time.perf_counter() - due) * 1000)
        else:
            errors += 1

    cpu_before = time.process_time()
    async with _session(max_open) as session:
        started = time.perf_counter()
        tasks = []
        for k in range(total):
            due = started + k / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(session, k, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {"rate": round(rate, 1), "items_per_s": round(len(latencies) / elapsed, 1), "requests": len(latencies),
            "errors": errors, **percentiles(latencies),
            "client_cpu": round((time.process_time() - cpu_before) / elapsed, 2)}


def single_bodies(requests: list[dict]) -> list[bytes]:
    """One request body per row: ``{"items": [row]}`` with an id."""
    return [json.dumps({"items": [{"id": str(i), **r}]}).encode() for i, r in enumerate(requests)]


def measure_rest(url: str, requests: list[dict], concurrencies: list[int], seconds: float,
                 half_load: bool = True) -> dict:
    """Single-item requests at each concurrency, 16-item ones at the first two, then (``half_load``)
    single items paced at 50% of the best single-item rate."""
    singles = single_bodies(requests)
    batches = [json.dumps({"items": [{"id": f"{i}-{k}", **r} for k, r in enumerate(requests[i:i + 16])]}).encode()
               for i in range(0, len(requests) - 16, 16)]
    single = [asyncio.run(rest_load(url, singles, 1, c, seconds)) for c in concurrencies]
    out = {"single": single,
           "batch16": [asyncio.run(rest_load(url, batches, 16, c, seconds)) for c in concurrencies[:2]]}
    best = max((r["items_per_s"] for r in single), default=0)
    if half_load and best > 0:
        out["half_load"] = asyncio.run(rest_paced(url, singles, best / 2, seconds))
    return out
