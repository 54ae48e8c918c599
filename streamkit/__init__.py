"""streamkit: stream language-model output from the command line, on Trio."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
