"""Parameters beyond the OpenAI set: ``-O KEY=VALUE``, ``--extra JSON``, and llama.cpp's names.

A remote server gets every parameter in the request body (``openai_body``)
and judges it itself. The local model can only honour what
``Llama.generate`` has, so here the request's options become its keyword
arguments, and anything it cannot do is refused up front, by name, rather
than silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from streamkit.errors import UsageError
from streamkit.request import GenerationOptions, GenerationRequest
from streamkit.schema_syntax import load_schema, multi


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


class LlamaSampling(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The ``Llama.generate`` sampling arguments a request may set (llama.cpp's names)."""

    top_k: int | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repeat_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    tfs_z: float | None = None
    mirostat_mode: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    penalize_nl: bool | None = None
    logit_bias: dict[int, float] | None = None


# Body fields the local producer reads from GenerationOptions itself.
_OPTION_FIELDS = ("temperature", "top_p", "seed", "max_tokens", "stop", "stop_token_ids")
_LLAMA_FIELDS = frozenset(LlamaSampling.__struct_fields__)
# The same setting under vLLM's name.
_ALIASES = {"repetition_penalty": "repeat_penalty"}


def local_request(request: GenerationRequest, n_vocab: int) -> tuple[GenerationRequest, dict]:
    """The request as the local model runs it, and the extra ``Llama.generate`` arguments.

    Extra fields that name an option (``temperature``, ``stop``...) become
    that option. Raises ``UsageError`` naming every parameter llama.cpp has no
    equivalent for, and for token ids outside the vocabulary.
    """
    opts = request.options
    extra = dict(opts.extra)
    folded = {name: extra.pop(name) for name in _OPTION_FIELDS if name in extra}
    llama = {_ALIASES.get(name, name): value for name, value in extra.items()}
    unsupported = sorted(name for name in extra if _ALIASES.get(name, name) not in _LLAMA_FIELDS)
    if opts.priority is not None:
        unsupported.insert(0, "priority")
    if unsupported:
        raise UsageError("the local model does not support " + ", ".join(unsupported)
                         + " (llama.cpp has: " + ", ".join(sorted(_LLAMA_FIELDS)) + ")")
    for name, value in (("top_k", opts.top_k), ("min_p", opts.min_p),
                        ("repeat_penalty", opts.repetition_penalty)):
        if value is not None:
            llama.setdefault(name, value)
    try:
        if folded:
            if isinstance(folded.get("stop"), str):
                folded["stop"] = [folded["stop"]]
            opts = msgspec.convert(
                {**msgspec.to_builtins(opts), **folded, "extra": {}}, GenerationOptions
            )
        sampling = msgspec.convert(llama, LlamaSampling, strict=False)
    except msgspec.ValidationError as exc:
        raise UsageError(f"bad parameter for the local model: {exc}") from None
    ids = (*request.prompt_ids, *opts.stop_token_ids, *(sampling.logit_bias or ()))
    outside = sorted({i for i in ids if not 0 <= i < n_vocab})
    if outside:
        raise UsageError(f"token id(s) {', '.join(map(str, outside[:5]))} outside the "
                         f"model's vocabulary (0..{n_vocab - 1})")
    request = msgspec.structs.replace(request, options=opts)
    arguments = msgspec.structs.asdict(sampling)
    bias = arguments.pop("logit_bias")
    if bias:
        arguments["logits_processor"] = [_bias_logits(bias)]
    return request, {name: value for name, value in arguments.items() if value is not None}


def _bias_logits(bias: dict[int, float]) -> Any:
    """A llama-cpp-python logits processor adding ``bias`` (token id -> value)."""
    import numpy as np

    ids = np.fromiter(bias.keys(), dtype=np.intp)
    values = np.fromiter(bias.values(), dtype=np.float32)

    def apply(input_ids: Any, scores: Any) -> Any:
        scores[ids] += values
        return scores

    return apply
