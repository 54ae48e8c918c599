"""``--server-metrics``: scrape the server's Prometheus endpoint before, during and after a run.

The scrapes go over a connection of their own (httpx), never one of the
benchmark's, and a scrape that fails or times out is counted, not fatal:
the run's figures are the client's, the server's view is extra. Each scrape
is bounded by ``SCRAPE_TIMEOUT_S`` so that a slow endpoint cannot stretch a
run; the one after the run is shielded, so that Ctrl-C still gets it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio

from streamkit.loadtest.server_metrics import Scrape, parse_scrape, run_summary

SCRAPE_TIMEOUT_S = 2.0


async def _scrape(client: httpx.AsyncClient, url: str) -> Scrape | None:
    with trio.move_on_after(SCRAPE_TIMEOUT_S):
        try:
            response = await client.get(url)
            if response.status_code == 200:
                return parse_scrape(response.text)
        except (httpx.HTTPError, ValueError):
            pass
    return None


async def watch(
    url: str,
    interval: float,
    body: Callable[[], Awaitable[None]],
    keep: Callable[[dict[str, Any]], None],
) -> None:
    """Run ``body`` (the run) while scraping ``url`` every ``interval`` seconds.

    ``keep`` receives the summary even when the run is cancelled (Ctrl-C), as
    the run keeps the requests that had finished.
    """
    failed = 0
    during: list[tuple[float, Scrape]] = []
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
        before = await _scrape(client, url)
        failed += before is None
        start = trio.current_time()

        async def poll() -> None:
            nonlocal failed
            while True:
                await trio.sleep(interval)
                scrape = await _scrape(client, url)
                if scrape is None:
                    failed += 1
                else:
                    during.append((trio.current_time() - start, scrape))

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await body()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                after = await _scrape(client, url)
                failed += after is None
                keep(run_summary(url, interval, before, during, after, failed))
