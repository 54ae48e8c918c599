"""Tools that ship with streamkit, so tool calling works out of the box.

* ``now``: the current date and time (optionally in an IANA time zone);
* ``calculate``: an arithmetic expression, evaluated on its syntax tree
  (numbers and + - * / // % ** only: no names, calls or attributes);
* ``read_file``: a text file under the tool root (``--tool-root``, default
  the current directory); paths that leave the root are refused.
"""

from __future__ import annotations

import ast
import datetime
import operator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamkit.config import ToolSpec
from streamkit.tools.registry import Tool

READ_LIMIT = 64 * 1024

_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def now(timezone: str | None = None) -> str:
    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    return datetime.datetime.now(zone).astimezone(zone).isoformat(timespec="seconds")


def calculate(expression: str) -> str:
    tree = ast.parse(expression, mode="eval")
    return repr(_evaluate(tree.body))


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ValueError("exponent too large")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"not allowed in an expression: {ast.unparse(node)!r}")


def make_read_file(root: Path):
    root = root.resolve()

    def read_file(path: str) -> str:
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"{path!r} is outside the tool root {root}")
        with target.open("rb") as handle:
            data = handle.read(READ_LIMIT + 1)
        text = data[:READ_LIMIT].decode("utf-8", "replace")
        return text + ("\n[truncated]" if len(data) > READ_LIMIT else "")

    return read_file


def builtin_tools(root: Path) -> dict[str, Tool]:
    def spec(description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
        return ToolSpec(
            description=description,
            parameters={"type": "object", "properties": properties, "required": required,
                        "additionalProperties": False},
            python="streamkit.tools.builtins",
        )

    return {
        "now": Tool("now", spec(
            "The current date and time, ISO 8601.",
            {"timezone": {"type": "string", "description": "IANA zone, e.g. Europe/Paris"}},
            [],
        ), now),
        "calculate": Tool("calculate", spec(
            "Evaluate an arithmetic expression (+ - * / // % ** and parentheses).",
            {"expression": {"type": "string"}}, ["expression"],
        ), calculate),
        "read_file": Tool("read_file", spec(
            f"Read a UTF-8 text file (at most {READ_LIMIT // 1024} KiB) under {root}.",
            {"path": {"type": "string", "description": "relative to the tool root"}},
            ["path"],
        ), make_read_file(root)),
    }
