"""Producers and model boundaries: where streamkit meets a server or a model.

``backend`` chooses one for a command's settings; ``openai_http`` streams an
OpenAI-compatible server over a ``transport`` (``transports`` picks it:
``h11_transport`` for plain http, ``httpx_transport`` for TLS and proxies);
``llama/`` runs a GGUF model in-process and is the
only place that imports ``llama_cpp``.
"""
