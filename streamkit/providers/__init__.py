"""Producers and model boundaries: where streamkit meets a server or a model.

``backend`` chooses one for a command's settings; ``openai_http`` streams an
OpenAI-compatible server; ``llama/`` runs a GGUF model in-process and is the
only place that imports ``llama_cpp``.
"""
