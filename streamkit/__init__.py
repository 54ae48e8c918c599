"""streamkit: stream language-model output from the command line, on Trio."""

# A literal, not importlib.metadata: looking the version up costs ~30 ms of
# start-up, which every command would pay before its first token.
__version__ = "0.1.0"
