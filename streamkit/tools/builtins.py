"""Tools that ship with streamkit, so tool calling works out of the box.

* ``now``: the current date and time (optionally in an IANA time zone);
* ``calculate``: an arithmetic expression, evaluated on its syntax tree
  (numbers and + - * / // % ** only: no names, calls or attributes). Every
  integer along the way is held to ``DIGIT_LIMIT`` digits, checked *before*
  a power or product is computed: ``10 ** 10 ** 10`` is a single C call that
  would hold the GIL for hours, where no timeout, Ctrl-C or SIGTERM can reach
  it. With the expression's length capped too, every answer is quick;
* ``read_file``: a text file under the tool root (``--tool-root``, default
  the current directory), at most ``READ_LIMIT`` bytes of it; paths that
  leave the root are refused, and so is anything but a regular file (opening
  a FIFO waits for a writer, a device may never end).
"""

from __future__ import annotations

import ast
import datetime
import math
import operator
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamkit.config import ToolSpec
from streamkit.tools.registry import Tool

READ_LIMIT = 64 * 1024
DIGIT_LIMIT = 1000  # decimal digits of any integer in a calculation
EXPRESSION_LIMIT = 1000  # characters of an expression
_TOO_LARGE = 10**DIGIT_LIMIT  # the smallest integer with more digits
_BIT_LIMIT = math.ceil(DIGIT_LIMIT * math.log2(10))  # more bits than this: too large

_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def now(timezone: str | None = None) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when the tool runs

    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    return datetime.datetime.now(zone).astimezone(zone).isoformat(timespec="seconds")


def calculate(expression: str) -> str:
    if len(expression) > EXPRESSION_LIMIT:
        raise ValueError(f"the expression is longer than {EXPRESSION_LIMIT} characters")
    tree = ast.parse(expression, mode="eval")
    return repr(_evaluate(tree.body))


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        _refuse_growth(node.op, left, right)
        return _bounded(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"not allowed in an expression: {ast.unparse(node)!r}")


def _refuse_growth(op: ast.operator, left: float | int, right: float | int) -> None:
    """Refuse a power or product of integers that is sure to exceed the bound.

    These are the only operations whose result can be much larger than their
    operands. ``bits`` is the fewest bits the result can have, so nothing within
    the bound is refused; what passes is computed (at most about twice the
    bound, quickly) and ``_bounded`` checks the exact result.
    """
    if not (type(left) is int and type(right) is int):
        return  # a float overflows quickly (OverflowError), it never grows
    if isinstance(op, ast.Pow) and right > 0:
        bits = (left.bit_length() - 1) * right + 1  # as |left| >= 2 ** (bit_length - 1)
    elif isinstance(op, ast.Mult) and left and right:
        bits = left.bit_length() + right.bit_length() - 1
    else:
        return
    if bits > _BIT_LIMIT:
        raise _too_large()


def _bounded(value: float | int) -> float | int:
    if type(value) is int and abs(value) >= _TOO_LARGE:
        raise _too_large()
    return value


def _too_large() -> ValueError:
    return ValueError(f"a number in the expression would have more than {DIGIT_LIMIT} digits")


def make_read_file(root: Path) -> Callable[[str], str]:
    """``read_file`` for files under ``root``."""
    root = root.resolve()

    def read_file(path: str) -> str:
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"{path!r} is outside the tool root {root}")
        _require_regular(os.stat(target).st_mode, path)
        # O_NONBLOCK: should a FIFO take the file's place since the stat, opening
        # it returns at once instead of waiting for a writer; fstat then refuses it.
        descriptor = os.open(target, _OPEN_FLAGS)
        with open(descriptor, "rb") as handle:
            _require_regular(os.fstat(descriptor).st_mode, path)
            data = handle.read(READ_LIMIT + 1)
        text = data[:READ_LIMIT].decode("utf-8", "replace")
        return text + ("\n[truncated]" if len(data) > READ_LIMIT else "")

    return read_file


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC


def _require_regular(mode: int, path: str) -> None:
    """Only a regular file has an end: a FIFO, a device or a socket may block or never end."""
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path!r} is not a regular file")


def builtin_tools(root: Path) -> dict[str, Tool]:
    def spec(description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
        return ToolSpec(
            description=description,
            parameters={
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
            python="streamkit.tools.builtins",
        )

    return {
        "now": Tool(
            "now",
            spec(
                "The current date and time, ISO 8601.",
                {"timezone": {"type": "string", "description": "IANA zone, e.g. Europe/Paris"}},
                [],
            ),
            now,
        ),
        "calculate": Tool(
            "calculate",
            spec(
                "Evaluate an arithmetic expression (+ - * / // % ** and parentheses).",
                {"expression": {"type": "string"}},
                ["expression"],
            ),
            calculate,
        ),
        "read_file": Tool(
            "read_file",
            spec(
                f"Read a UTF-8 text file (at most {READ_LIMIT // 1024} KiB) under {root}.",
                {"path": {"type": "string", "description": "relative to the tool root"}},
                ["path"],
            ),
            make_read_file(root),
        ),
    }
