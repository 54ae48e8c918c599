"""Configuration: the TOML file with named profiles, and how settings resolve.

The file lives in the platformdirs user config dir (``config.toml``), or at
``$STREAMKIT_CONFIG``. A profile saves retyping a base URL and model::

    default_profile = "local-server"

    [profiles.local-server]
    base_url = "http://127.0.0.1:8000/v1"
    model = "smollm2"
    api_key_env = "MY_SERVER_KEY"   # or api_key = "..." (keep the file private)

    [models]                        # local GGUF files, usable as --model NAME
    tiny = "/models/tiny.gguf"

With no base URL from any source, commands run a local model in-process.

Precedence, highest first: command-line flag, ``STREAMKIT_*`` variable,
``OPENAI_*`` variable (base URL and key only), the selected profile.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import platformdirs

from streamkit.errors import UsageError

# Of one reply's text and tool-call arguments: a stream that never ends is cut here.
DEFAULT_MAX_REPLY_BYTES = 16 << 20

# The config file's numbers obey the same bounds as the flags that set them:
# a negative, zero or NaN timeout is refused where the file is read.
Seconds = Annotated[float, msgspec.Meta(ge=0.001)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Tokens = Annotated[int, msgspec.Meta(ge=1)]


class Profile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    connect_timeout: Seconds | None = None
    idle_timeout: Seconds | None = None
    timeout: Seconds | None = None
    max_retries: Count | None = None
    context_tokens: Tokens | None = None  # the server model's context window, if known


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    default_profile: str | None = None
    profiles: dict[str, Profile] = {}
    models: dict[str, str] = {}  # local model name -> .gguf path
    tools: dict[str, ToolSpec] = {}  # offered with --tool NAME
    mcp: dict[str, McpServerSpec] = {}  # MCP servers, offered with --mcp NAME
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES  # a longer reply is cut, with an error
    log: bool = True  # keep a conversation log (--no-log turns it off once)
    db: str | None = None  # the log database, if not the default
    show_reasoning: bool = True  # a reasoning model's thinking, on a terminal
    editing_mode: Literal["emacs", "vi"] = "emacs"  # the interactive prompt's keys
    markdown: bool = True  # chat replies drawn as Markdown on a terminal


class Settings(msgspec.Struct, frozen=True):
    """Resolved connection settings for one command."""

    base_url: str | None
    api_key: str | None
    model: str | None
    connect_timeout: float
    idle_timeout: float | None
    timeout: float | None
    max_retries: int
    context_tokens: int | None = None
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    local_models: dict[str, str] = {}
    log: bool = True
    db: str | None = None
    tools: dict[str, ToolSpec] = {}
    mcp: dict[str, McpServerSpec] = {}
    debug: bool = False  # one stderr line per HTTP request (--debug, STREAMKIT_DEBUG=1)
    show_reasoning: bool = True
    editing_mode: str = "emacs"
    markdown: bool = True


class RelayLimits(msgspec.Struct, frozen=True):
    """Every limit of the relay, named and defaulted in one place."""

    max_message_bytes: int = 1 << 20
    max_connections: int = 256
    max_requests_per_connection: int = 8
    idle_timeout: float = 300.0  # seconds without a frame from the client
    max_tokens: int | None = None  # per request
    slow_client_timeout: float = 10.0  # seconds one frame may take to send
    send_queue: int = 1024  # frames waiting for a client, after merging


def config_path() -> Path:
    override = os.environ.get("STREAMKIT_CONFIG")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("streamkit")) / "config.toml"


def load_config(path: Path | None = None) -> ConfigFile:
    """The parsed config file; an absent file is an empty config."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigFile()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        config = msgspec.convert(tomllib.loads(raw.decode("utf-8")), ConfigFile)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"config file {path}: {exc}") from None
    if config.max_reply_bytes < 1:
        raise UsageError(
            f"config file {path}: max_reply_bytes must be at least 1, not {config.max_reply_bytes}"
        )
    return config


def resolve_settings(
    *,
    profile: str | None,
    base_url: str | None,
    api_key: str | None,
    model: str | None,
    connect_timeout: float | None,
    idle_timeout: float | None,
    timeout: float | None,
    max_retries: int | None,
    config: ConfigFile | None = None,
    env: dict[str, str] | None = None,
    debug: bool = False,
) -> Settings:
    """Merge flags, environment and the profile into ``Settings``."""
    env = dict(os.environ) if env is None else env
    config = load_config() if config is None else config
    name = profile or env.get("STREAMKIT_PROFILE") or config.default_profile
    chosen = Profile()
    if name:
        if name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none defined"
            raise UsageError(f"unknown profile {name!r} (profiles: {known})")
        chosen = config.profiles[name]
    profile_key = chosen.api_key
    if chosen.api_key_env:
        profile_key = env.get(chosen.api_key_env) or profile_key

    def first(*values):
        return next((v for v in values if v not in (None, "")), None)

    return Settings(
        base_url=first(
            base_url, env.get("STREAMKIT_BASE_URL"), env.get("OPENAI_BASE_URL"), chosen.base_url
        ),
        api_key=first(
            api_key, env.get("STREAMKIT_API_KEY"), env.get("OPENAI_API_KEY"), profile_key
        ),
        model=first(model, env.get("STREAMKIT_MODEL"), chosen.model),
        connect_timeout=first(connect_timeout, chosen.connect_timeout, 10.0),
        idle_timeout=first(idle_timeout, chosen.idle_timeout, 120.0),
        timeout=first(timeout, chosen.timeout),
        max_retries=first(max_retries, chosen.max_retries, 2),
        context_tokens=chosen.context_tokens,
        local_models=config.models,
        log=config.log,
        tools=config.tools,
        mcp=config.mcp,
        db=config.db,
        show_reasoning=config.show_reasoning,
        editing_mode=config.editing_mode,
        markdown=config.markdown,
        debug=debug or env.get("STREAMKIT_DEBUG", "").lower() in ("1", "true", "yes", "on"),
        max_reply_bytes=config.max_reply_bytes,
    )


class ToolSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    command: list[str] | None = None
    arguments: Literal["stdin", "argument"] = "stdin"
    python: str | None = None
    timeout: Seconds | None = None
    confirm: bool = False


class McpServerSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One ``[mcp.NAME]`` table: a Model Context Protocol server whose tools are offered.

    Either ``command`` (with ``args``, ``env``, ``cwd``: started as a subprocess,
    no shell, spoken to on stdin/stdout) or ``url`` (Streamable HTTP, with
    ``headers``). ``${VAR}`` in ``env`` and ``headers`` values is read from the
    environment, so a token need not be written in the file.
    """

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    enabled: bool = True
    confirm: bool | list[str] = False  # every tool of the server, or these tools
    allow: list[str] | None = None  # only these tools (default: all)
    deny: list[str] = []
    timeout: Seconds | None = None  # each call (default: --tool-timeout)
    start_timeout: Seconds = 30.0  # starting the server and listing its tools
