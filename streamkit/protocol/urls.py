"""Base URLs: joining an API path to one, and showing one without its secrets, sans-IO.

A base URL may carry a query the server needs on every request
(``http://h/openai/v1?api-version=2``): a path is joined to the base URL's
path, before that query, never appended after it. It may also carry
credentials (``http://user:password@h/v1``) or a key in its query
(``?api_key=...``): wherever a base URL is shown -- messages, ``--debug``
lines -- or stored -- the log's ``provider`` -- it goes through
``public_url`` first, so a secret is only ever sent, never written.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from streamkit.errors import UsageError

# Query parameters whose value is shown as ``***``: names that hold credentials.
_SECRET_NAMES = ("key", "token", "secret", "password", "passwd", "sig", "auth", "credential")
_USERINFO = re.compile(r"(//)[^/?#@]*@")


def split_query(url: str) -> tuple[str, str]:
    """``url`` without its query (and fragment), and the query (``""`` if none)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment="")), parts.query


@lru_cache(maxsize=256)  # a batch joins the same two strings for every line
def join_url(base: str, path: str) -> str:
    """``path`` (relative, e.g. ``chat/completions``) under ``base``'s path, with
    ``base``'s query kept at the end: ``http://h/v1?v=2`` + ``models`` is
    ``http://h/v1/models?v=2``."""
    parts = urlsplit(base)
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit(parts._replace(path=joined, fragment=""))


def plain_http_address(base_url: str) -> tuple[str, int]:
    """The host and port of a plain ``http://host[:port]/path`` base URL, for the
    clients that open their own sockets; anything else is a usage error."""
    parts = urlsplit(base_url)
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise UsageError(f"invalid base URL {public_url(base_url)!r}: {exc}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"invalid base URL {public_url(base_url)!r}: not http://host[:port]/path")
    return parts.hostname, port


@lru_cache(maxsize=256)  # and shows the same URL for every line's ``--debug`` line
def public_url(url: str) -> str:
    """``url`` as it may be shown or stored: no ``user:password@``, and the value of
    any query parameter named like a credential replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:  # not a URL urllib can split: at least drop the userinfo
        return _USERINFO.sub(r"\1", url)
    return urlunsplit(
        SplitResult(parts.scheme, netloc, parts.path, _public_query(parts.query), parts.fragment)
    )


def url_secrets(url: str) -> list[str]:
    """The secrets written in ``url`` (its user name, password and credential-named
    query values), for redacting free text that might quote it."""
    try:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
    except ValueError:
        return []
    # The password, or a user name that is the whole userinfo (``https://TOKEN@h``).
    secrets = [userinfo, userinfo.partition(":")[2]] if userinfo else []
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if value and _is_secret_name(name):
            secrets.append(value)
    secrets += [unquote(secret) for secret in secrets]  # as a server may echo them
    # The longest first: a password must not be half-replaced as part of the userinfo.
    return sorted({secret for secret in secrets if secret}, key=len, reverse=True)


def _public_query(query: str) -> str:
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if value and _is_secret_name(name):
            value = "***"
        pairs.append(f"{name}{equals}{value}")
    return "&".join(pairs)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_NAMES)
