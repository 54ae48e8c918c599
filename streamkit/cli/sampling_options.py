"""Options for parameters beyond the OpenAI set, token ids and debugging, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from streamkit.cli.options import GENERATION

TOKENS = "Token level"

TopK = Annotated[
    int | None,
    typer.Option(
        "--top-k",
        min=0,
        help="Sample from the K most likely tokens only",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
MinP = Annotated[
    float | None,
    typer.Option(
        "--min-p",
        min=0.0,
        max=1.0,
        help="Drop tokens less likely than this fraction of the most likely one",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
RepetitionPenalty = Annotated[
    float | None,
    typer.Option(
        "--repetition-penalty",
        min=0.0,
        help="Penalty for repeating tokens (1: "
        "none); sent as `repetition_penalty` (vLLM; llama.cpp servers read "
        "-O repeat_penalty=...)",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
StopTokenIds = Annotated[
    str | None,
    typer.Option(
        "--stop-token-ids",
        metavar="IDS",
        help="Stop at any of these token ids (comma-separated)",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
Priority = Annotated[
    int | None,
    typer.Option(
        "--priority",
        help="Scheduling priority, for servers that have one (vLLM: lower runs first)",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
OptionPairs = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-O",
        metavar="KEY=VALUE",
        help="Any other request body field "
        "(repeatable); VALUE is parsed as JSON where it parses, else a string",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
Extra = Annotated[
    str | None,
    typer.Option(
        "--extra",
        metavar="JSON",
        help="A JSON object merged into the request body (-O wins over it)",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
ReturnTokenIds = Annotated[
    bool,
    typer.Option(
        "--return-token-ids",
        help="Ask for the token ids of each piece of text "
        "(vLLM's return_token_ids; always available locally); shown with --events "
        "and in batch results",
        rich_help_panel=TOKENS,
    ),
]
PromptIds = Annotated[
    str | None,
    typer.Option(
        "--prompt-ids",
        metavar="IDS",
        help="The prompt as token ids (comma-separated) instead of text",
        rich_help_panel=TOKENS,
        show_default=False,
    ),
]
Debug = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="One stderr line per HTTP request: URL, status, time to "
        "headers, first byte and end, request id and rate-limit headers (never the "
        "key) [env: STREAMKIT_DEBUG=1]",
        rich_help_panel="Connection",
    ),
]
SchemaText = Annotated[
    str | None,
    typer.Option(
        "--schema",
        metavar="SCHEMA",
        help="The reply must be JSON valid against "
        "SCHEMA: a JSON Schema, a file holding one, or fields like 'name, age int, "
        "tags list[str]' (see README); checked at the end (exit 10 if not)",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
SchemaMulti = Annotated[
    bool,
    typer.Option(
        "--schema-multi",
        help='A list of --schema objects, as {"items": [...]}',
        rich_help_panel=GENERATION,
    ),
]
