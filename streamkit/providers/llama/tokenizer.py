"""A GGUF file's tokenizer without its weights: bench counts its prompts in tokens with it."""

from __future__ import annotations

from pathlib import Path

from streamkit.errors import UsageError
from streamkit.providers.llama.model import load_errors


class Tokenizer:
    """A GGUF file's tokenizer: only its vocabulary is loaded, no weights, no context."""

    def __init__(self, path: Path) -> None:
        with load_errors(
            path,
            "counting tokens with a GGUF file",
            failure="cannot read the tokenizer of",
            missing=UsageError,
        ):
            import llama_cpp
            from llama_cpp._internals import LlamaModel

            params = llama_cpp.llama_model_default_params()
            params.vocab_only = True
            self._model = LlamaModel(path_model=str(path), params=params, verbose=False)
        self.path = path

    def encode(self, text: str) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, tokens: list[int]) -> str:
        return self._model.detokenize(tokens).decode("utf-8", "replace")
