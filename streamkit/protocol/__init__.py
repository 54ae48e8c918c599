"""Sans-IO protocol code: bytes and objects in, streamkit events out.

Nothing in this package performs I/O or imports trio or httpx, so every
piece is tested by feeding it input split at every position.
"""
