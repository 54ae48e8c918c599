"""A GGUF model loaded by llama.cpp, and llama.cpp's load failures as streamkit errors.

Every part of streamkit that opens a GGUF file (generation, scoring, bench's
tokenizer) goes through ``load_errors`` here, so a missing file, a missing
llama-cpp-python or a file llama.cpp rejects reads the same everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from streamkit.errors import ModelError, StreamkitError, UsageError, one_line
from streamkit.providers.llama.files import LLAMA_THREADS
from streamkit.providers.llama.grammar import json_grammar
from streamkit.request import GenerationRequest

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar

DEFAULT_CONTEXT = 4096  # tokens of context window


GRAMMAR_CACHE = 64  # compiled grammars kept per model


class LocalModel:
    """A GGUF file, loaded on first use and then kept for the whole process."""

    def __init__(self, path: Path, name: str, *, n_ctx: int = DEFAULT_CONTEXT) -> None:
        self.path = path
        self.name = name
        self.n_ctx = n_ctx
        self.limiter = trio.CapacityLimiter(1)
        self._llm: Llama | None = None
        self._chat_format: Any = None
        self._grammars: dict[bytes, LlamaGrammar] = {}

    async def llm(self) -> Llama:
        if self._llm is None:
            await trio.to_thread.run_sync(self._load, limiter=self.limiter)
        assert self._llm is not None
        return self._llm

    def _load(self) -> None:
        if self._llm is not None:
            return
        with load_errors(self.path, "the local backend"):
            from llama_cpp import Llama

            llm = Llama(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_threads=LLAMA_THREADS,
                verbose=False,
            )
        self._chat_format = _chat_formatter(llm)
        self._llm = llm

    def grammar(self, schema: dict[str, Any]) -> LlamaGrammar:
        """The grammar that constrains generation to ``schema``, compiled once per schema."""
        key = msgspec.json.encode(schema)
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            if len(self._grammars) >= GRAMMAR_CACHE:  # a batch of many per-record schemas
                self._grammars.clear()

            try:
                self._grammars[key] = LlamaGrammar.from_string(json_grammar(schema), verbose=False)
            except Exception as exc:  # the converter asserts, raises anything
                raise ModelError(
                    f"cannot turn the schema into a grammar: {one_line(exc)}"
                ) from None
        return self._grammars[key]

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The request as model tokens: chat messages through the GGUF's template."""
        assert self._llm is not None
        llm = self._llm
        if request.prompt_ids:
            return list(request.prompt_ids)  # taken as given: no BOS added
        if request.kind == "completion":
            return llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False)
        if self._chat_format is None:
            raise ModelError(f"model {self.name} has no chat template; use `complete`")
        result = self._chat_format(messages=[m.to_openai() for m in request.messages])
        return llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )


def _chat_formatter(llm: Llama) -> Any:
    """The chat template from the GGUF metadata, as llama-cpp-python renders it."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(key: str) -> str:
        token_id = llm.metadata.get(key)
        if token_id is None:
            return ""
        return llm._model.token_get_text(int(token_id))

    return Jinja2ChatFormatter(
        template=template,
        eos_token=token_text("tokenizer.ggml.eos_token_id"),
        bos_token=token_text("tokenizer.ggml.bos_token_id"),
    )


@contextlib.contextmanager
def load_errors(
    path: Path,
    purpose: str,
    *,
    failure: str = "cannot load model",
    missing: type[StreamkitError] = ModelError,
) -> Iterator[None]:
    """Open a GGUF file inside this block: its failures become one streamkit line.

    ``purpose`` names what needs llama-cpp-python when it is not installed;
    ``failure`` starts the line for a file llama.cpp rejects.
    """
    if not path.is_file():
        raise missing(f"{'tokenizer' if missing is UsageError else 'model'} file not found: {path}")
    try:
        yield
    except ImportError:
        raise ModelError(
            f"{purpose} needs llama-cpp-python: pip install llama-cpp-python"
        ) from None
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"{failure} {path}: {one_line(exc)}") from None
