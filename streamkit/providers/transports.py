"""Which transport a base URL gets: the lean one unless TLS or a proxy needs httpx.

Kept apart from transport.py, the interface both implementations import.
"""

from __future__ import annotations

import os
import sys

from streamkit.providers.transport import Transport


def proxied(base_url: str) -> bool:
    """Whether httpx would send requests for ``base_url`` through an environment proxy.

    httpx reads the proxies with ``urllib.request.getproxies()``; with none
    set (the usual case) httpx is not even imported. Otherwise httpx's own
    ``get_environment_proxies`` and ``URLPattern`` decide, NO_PROXY included.
    Outside macOS and Windows, ``getproxies`` reads only ``*_proxy``
    variables, so without one it is not imported either (with
    ``http.client``, several ms of every start-up).
    """
    if sys.platform not in ("darwin", "win32") and not any(
        name.lower().endswith("_proxy") for name in os.environ
    ):
        return False
    import urllib.request

    found = urllib.request.getproxies()
    if not any(found.get(scheme) for scheme in ("http", "https", "all")):
        return False
    import httpx
    from httpx._utils import URLPattern, get_environment_proxies

    url = httpx.URL(base_url)
    patterns = sorted(
        ((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items()),
        key=lambda pair: pair[0],
    )
    for pattern, proxy in patterns:
        if pattern.matches(url):
            return proxy is not None
    return False


def build_transport(
    base_url: str,
    api_key: str | None,
    *,
    connect_timeout: float | None,
    idle_timeout: float | None,
    lean: bool | None = None,
) -> Transport:
    """The transport for ``base_url``: the lean one for plain ``http://`` reached
    directly, httpx otherwise (``lean`` forces the choice, for tests and benchmarks).

    ``idle_timeout`` bounds each read and write: no bytes for that long while
    waiting for the answer or inside the stream.
    """
    if lean is None:
        lean = base_url.startswith("http://") and not proxied(base_url)
    if lean:
        from streamkit.providers.h11_transport import H11Transport

        return H11Transport(
            base_url, api_key, connect_timeout=connect_timeout, idle_timeout=idle_timeout
        )
    from streamkit.providers.httpx_transport import HttpxTransport

    return HttpxTransport(
        base_url, api_key, connect_timeout=connect_timeout, idle_timeout=idle_timeout
    )
