"""streamkit's error hierarchy: one class per failure a user can act on.

Each class carries its exit code and a one-line message. Low-level exceptions
(httpx, OS, llama.cpp) are translated into these at exactly one boundary per
producer, so the CLI only ever sees ``StreamkitError`` and prints
``streamkit: <message>`` without a traceback.

Exit codes (documented in README.md):

====  ===================================================
0     success
1     other failure
2     usage error (bad option, bad config file)
3     cannot connect to the server
4     the server answered with an HTTP error status
5     timeout (connect, idle or whole request)
6     protocol error (a stream that cannot be decoded)
7     a batch finished with some failed lines
8     model error (unknown model, unusable model file)
9     the model was still calling tools at the --max-hops limit
10    the reply does not validate against the --schema
11    the conversation log failed (the reply itself was delivered)
12    the output could not be written (a full disk, an I/O error)
13    an MCP server could not be started or failed (``mcp list``, ``mcp call``)
14    ``--extract``: the reply has no fenced code block
15    the Ray cluster could not be reached, or lost every worker
130   interrupted by Ctrl-C (SIGINT)
143   terminated by SIGTERM
====  ===================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class StreamkitError(Exception):
    """Base class: a failure with a one-line message and an exit code."""

    kind = "error"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable  # safe to send the same request again
        self.retry_after = retry_after  # seconds the server asked us to wait

    def __str__(self) -> str:
        return self.message


class UsageError(StreamkitError):
    """Bad options, arguments or configuration."""

    kind = "usage"
    exit_code = 2


class ConnectFailed(StreamkitError):
    """The server could not be reached (refused, DNS, reset before a reply)."""

    kind = "connection"
    exit_code = 3


class HTTPStatusError(StreamkitError):
    """The server answered with a non-success HTTP status."""

    kind = "http"
    exit_code = 4


class RequestTimeout(StreamkitError):
    """Connect, idle or whole-request time ran out."""

    kind = "timeout"
    exit_code = 5


class ProtocolError(StreamkitError):
    """The response stream broke the SSE or OpenAI streaming protocol."""

    kind = "protocol"
    exit_code = 6


class PartialBatchError(StreamkitError):
    """Some lines of a batch failed; each has an error record in the output."""

    kind = "batch"
    exit_code = 7


class ModelError(StreamkitError):
    """The model is unknown, missing, corrupt, or failed while generating."""

    kind = "model"
    exit_code = 8


class ToolHopLimit(StreamkitError):
    """The model kept calling tools past ``--max-hops``."""

    kind = "tool_hops"
    exit_code = 9


class SchemaError(StreamkitError):
    """The reply is not JSON, or not valid against the requested schema."""

    kind = "schema"
    exit_code = 10


class LogError(StreamkitError):
    """The conversation log failed while the command ran (locked, full disk, corrupt).

    The reply itself was delivered: a log failure is a warning line and this
    code only when nothing else failed.
    """

    kind = "log"
    exit_code = 11


class OutputError(StreamkitError):
    """The output could not be written (a full disk, an I/O error); what was written stays."""

    kind = "output"
    exit_code = 12


class ToolServerError(StreamkitError):
    """An MCP server could not be started, or failed, where its tools were the job.

    In a chat a failed server is a warning and the chat goes on without its
    tools; ``mcp list`` and ``mcp call`` exist to reach the server, so there
    it is the command's failure.
    """

    kind = "mcp"
    exit_code = 13


class NothingToExtract(StreamkitError):
    """``--extract`` found no fenced code block in the reply (the log keeps the reply)."""

    kind = "extract"
    exit_code = 14


class ClusterError(StreamkitError):
    """The Ray cluster could not be reached, or every worker of a run was lost."""

    kind = "cluster"
    exit_code = 15


_BY_KIND: dict[str, type[StreamkitError]] = {
    cls.kind: cls
    for cls in (
        StreamkitError,
        UsageError,
        ConnectFailed,
        HTTPStatusError,
        RequestTimeout,
        ProtocolError,
        PartialBatchError,
        ModelError,
        ToolHopLimit,
        SchemaError,
        LogError,
        OutputError,
        ToolServerError,
        NothingToExtract,
        ClusterError,
    )
}


def error_for_kind(kind: str, message: str, status: int | None = None) -> StreamkitError:
    """Rebuild the exception an error event stands for (unknown kinds: generic)."""
    return _BY_KIND.get(kind, StreamkitError)(message, status=status)


def redact(text: str, secrets: list[str | None]) -> str:
    """Replace every occurrence of a secret in ``text`` so it cannot leak.

    Servers sometimes echo the API key in their error messages; every message
    that reaches a user passes through here.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def one_line(value: object, width: int | None = None) -> str:
    """``value`` on one line (each run of whitespace one space), cut to ``width``.

    An exception whose message is empty is named by its type, so that an
    error line never ends in nothing.
    """
    text = " ".join(str(value).split())
    if not text and not isinstance(value, str):
        text = type(value).__name__
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text
