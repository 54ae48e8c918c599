#!/usr/bin/env bash
# Serves the embedded SmolLM2-135M-Instruct model with llama.cpp's
# OpenAI-compatible server on 127.0.0.1:${PORT:-8000} (model name "smollm2").
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
model=$("$py" -c 'from streamkit.localmodels import embedded_model_path; print(embedded_model_path())')
exec "$py" -m llama_cpp.server --model "$model" --model_alias smollm2 \
  --host 127.0.0.1 --port "${PORT:-8000}" --n_ctx 2048 --verbose false \
  --interrupt_requests false
