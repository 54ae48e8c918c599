"""The JSON lexer's tables, shared by the incremental parser and the closer, sans-IO.

The parser's modes (what the next character may be), the short escapes, the
number automaton and the literals: one definition that ``json_parse`` reads
characters with and ``json_close`` completes unfinished tokens with.
"""

from __future__ import annotations

import re
from typing import Any

from streamkit.errors import ProtocolError


class JSONStreamError(ProtocolError):
    """The text fed is not JSON; ``position`` is the offending character's offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"invalid JSON at character {position}: {message}")
        self.position = position


# Modes: what the next significant character may be.
VALUE = 0  # a value (top level, after ':' or after ',' in an array)
FIRST_VALUE = 1  # a value or ']' (just after '[')
FIRST_KEY = 2  # a key or '}' (just after '{')
KEY = 3  # a key (after ',' in an object)
COLON = 4  # ':' after a key
AFTER = 5  # ',' or the closing bracket, after a value inside a container
DONE = 6  # trailing whitespace only
STRING = 7  # inside a string (a key or a value)
NUMBER = 8
LITERAL = 9

# The short escapes: the parser decodes with this table, the closer encodes.
ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

WS = re.compile(r"[ \t\n\r]*")
STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
HEX = frozenset("0123456789abcdefABCDEF")
LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
LITERAL_START = {"t": "true", "f": "false", "n": "null"}

# Number states, after: '-', '0', a nonzero integer, '.', fraction digits,
# 'e', the exponent's sign, exponent digits.
N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP = range(8)
DIGITS = "0123456789"


def _number_table() -> list[dict[str, int]]:
    def on(chars: str, state: int) -> dict[str, int]:
        return dict.fromkeys(chars, state)

    exp = {**on("eE", N_E)}
    return [
        {**on("0", N_ZERO), **on("123456789", N_INT)},  # after '-'
        {".": N_DOT, **exp},  # after a leading '0': no more digits
        {**on(DIGITS, N_INT), ".": N_DOT, **exp},
        on(DIGITS, N_FRAC),
        {**on(DIGITS, N_FRAC), **exp},
        {**on("+-", N_ESIGN), **on(DIGITS, N_EXP)},
        on(DIGITS, N_EXP),
        on(DIGITS, N_EXP),
    ]


NUMBER_NEXT = _number_table()
NUMBER_COMPLETE = frozenset({N_ZERO, N_INT, N_FRAC, N_EXP})
NUMBER_INTEGRAL = frozenset({N_SIGN, N_ZERO, N_INT})  # int() once completed


# The parser's stack: one frame per open container, holding the live value.
class ObjectFrame:
    """An open object: the live dict, and the key of the member last started."""

    __slots__ = ("key", "value")

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value
        self.key = ""  # set before any member is placed


class ArrayFrame:
    """An open array: the live list."""

    __slots__ = ("value",)

    def __init__(self, value: list[Any]) -> None:
        self.value = value


Frame = ObjectFrame | ArrayFrame
