"""Parameters beyond the OpenAI set as the command line gives them: -O, --extra, --schema.

Pure parsing into request options; what a producer does with them is its own
business (a server gets them in the body, the local model as keyword arguments).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from streamkit.errors import UsageError
from streamkit.protocol.schema_syntax import load_schema, multi
from streamkit.request import GenerationOptions


def parse_option_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as body fields; a VALUE that parses as JSON is JSON.

    ``top_k=20`` is the number 20, ``ignore_eos=true`` the boolean,
    ``logit_bias={"50256":-100}`` an object; ``name=abc`` stays a string.
    """
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-O expects KEY=VALUE, got {pair!r}")
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            value = raw
        fields[key.strip()] = value
    return fields


def parse_extra(text: str | None) -> dict[str, Any]:
    """``--extra``: a JSON object of body fields."""
    if text is None:
        return {}
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise UsageError(f"--extra is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--extra must be a JSON object, got {type(value).__name__}")
    return value


def with_extra_parameters(
    options: GenerationOptions,
    *,
    top_k: int | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    stop_token_ids: str | None = None,
    priority: int | None = None,
    return_token_ids: bool = False,
    extra: str | None = None,
    option_pairs: Iterable[str] = (),
    schema: str | None = None,
    schema_multi: bool = False,
) -> GenerationOptions:
    """``options`` with the command line's extra parameters (``-O`` beats ``--extra``)
    and ``--schema`` (``--schema-multi``: a list of them)."""
    return msgspec.structs.replace(
        options,
        top_k=top_k,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        stop_token_ids=parse_id_list(stop_token_ids, "--stop-token-ids"),
        priority=priority,
        return_token_ids=return_token_ids,
        extra={**parse_extra(extra), **parse_option_pairs(option_pairs)},
        schema=parse_schema_option(schema, schema_multi),
    )


def parse_schema_option(text: str | None, as_list: bool) -> dict[str, Any] | None:
    """``--schema`` (and ``--schema-multi``) as a JSON Schema; ``UsageError`` if bad."""
    if text is None:
        if as_list:
            raise UsageError("--schema-multi needs --schema")
        return None
    try:
        schema = load_schema(text)
    except ValueError as exc:
        raise UsageError(f"--schema: {exc}") from None
    return multi(schema) if as_list else schema


def parse_id_list(text: str | None, what: str) -> tuple[int, ...]:
    """``504,3575,282`` (commas and/or spaces) as token ids."""
    if text is None:
        return ()
    try:
        ids = tuple(int(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise UsageError(f"{what} takes token ids separated by commas, got {text!r}") from None
    if not ids:
        raise UsageError(f"{what} has no token ids")
    if any(i < 0 for i in ids):
        raise UsageError(f"{what}: token ids are not negative")
    return ids
