"""The embedded llama.cpp model: the only importer of ``llama_cpp``.

Loading a model and translating its errors, generation in a worker thread,
log-probability scoring and the tokenizer bench uses all live here, so a
llama.cpp error becomes a streamkit error in exactly one package.
"""
