"""Parameters beyond the OpenAI set: ``-O KEY=VALUE``, ``--extra JSON``, and llama.cpp's names.

A remote server gets every parameter in the request body (``openai_body``)
and judges it itself. The local model can only honour what
``Llama.generate`` has, so here the request's options become its keyword
arguments, and anything it cannot do is refused up front, by name, rather
than silently ignored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from streamkit.errors import UsageError
from streamkit.request import GenerationOptions, GenerationRequest


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
        raise UsageError(
            "the local model does not support "
            + ", ".join(unsupported)
            + " (llama.cpp has: "
            + ", ".join(sorted(_LLAMA_FIELDS))
            + ")"
        )
    for name, value in (
        ("top_k", opts.top_k),
        ("min_p", opts.min_p),
        ("repeat_penalty", opts.repetition_penalty),
    ):
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
        raise UsageError(
            f"token id(s) {', '.join(map(str, outside[:5]))} outside the "
            f"model's vocabulary (0..{n_vocab - 1})"
        )
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
