"""Schema-valid closing of an unfinished JSON document, sans-IO.

A reply cut short (Ctrl-C, a token limit, a dropped connection) is kept as
a value its reader accepts by appending the shortest text that completes it
validly: a search over the schema, apart from reading characters. The parser
(``streamkit.protocol.json_parse``) hands what it has read over as
``Unfinished``; the modes it names are defined here, so that this module needs
nothing from the parser, and schemas are read by ``json_schema``.

Completion (``closing_text``)
    A value still to be written is written as its *minimal value* (see
    ``streamkit.protocol.json_schema``). Where the prefix leaves a choice --
    the key a half-written key becomes, the enum value a half-written string
    becomes, a property to follow a trailing comma -- the shortest completion
    wins, ties going to required keys, then to schema order. A pending escape
    is finished so that no lone surrogate is produced where a pair can still
    be formed. Without a schema the text is closed syntactically, a missing
    value being ``null``. The output has no whitespace.

    When the text fed cannot be completed validly -- it is no prefix of a
    valid document: a key ``additionalProperties`` forbids, a string no enum
    value starts with, ``1.5`` for an integer, more items than ``maxItems`` --
    ``closing_text`` returns the schema-free completion: the result parses but
    does not validate. One case that looks hopeless is not: a ``,`` in an
    object that already has every property ``additionalProperties: false``
    allows is completed by repeating an existing member verbatim (JSON keeps
    the last of duplicate keys, so the parsed value is unchanged and valid).
    ``oneOf`` is completed like ``anyOf``: should the completed value match
    several branches, it fails ``oneOf``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from streamkit.protocol.json_lex import (
    AFTER,
    COLON,
    ESCAPES,
    FIRST_KEY,
    FIRST_VALUE,
    KEY,
    LITERAL,
    NUMBER,
    STRING,
    VALUE,
)
from streamkit.protocol.json_schema import (
    PAD,
    Schema,
    all_or_none,
    allowed_values,
    candidates,
    dumps,
    item_schemas,
    minimal,
    same,
    type_allows,
    valid,
)

_SHORT_FOR = {char: "\\" + letter for letter, char in ESCAPES.items()}


class Unfinished:
    """What was fed, as the parser hands it over to be closed: the open containers
    (outermost first) with, for objects, the key of the member last started, the
    parser's mode (not DONE) and the token in progress.

    In mode STRING, ``text`` and ``escape`` are the string's decoded prefix and
    its pending escape's raw text (``is_key``: it is a key). In NUMBER and
    LITERAL, ``end`` is the shortest text finishing the token; ``raw`` is a
    number's text (``integral``: int() reads it, else float()), ``value`` a
    literal's value.
    """

    def __init__(
        self,
        containers: Sequence[dict[str, Any] | list[Any]],
        keys: Sequence[str],
        mode: int,
        is_key: bool,
    ) -> None:
        self.containers = containers
        self.keys = keys
        self.mode = mode
        leaf = None if mode == STRING and is_key else mode  # the scalar in progress, if any
        self.leaf = leaf if leaf in (STRING, NUMBER, LITERAL) else None
        self.text = self.escape = self.raw = self.end = ""
        self.integral = False
        self.value: Any = None

    def closing_text(self, schema: Schema | None) -> str:
        """The shortest completion valid against ``schema``, else the syntactic one."""
        if schema is not None and schema is not True:
            text = self._complete_level(0, schema, schema)
            if text is not None:
                return text
        text = self._complete_level(0, True, True)
        assert text is not None  # everything fits the empty schema
        return text

    def _complete_level(self, level: int, schema: Schema, root: Schema) -> str | None:
        """Completion of the container at ``level``, or past the innermost one
        (``level == len(containers)``) of the scalar in progress or the top-level value."""
        if level == len(self.containers) and self.leaf is None:
            return minimal(schema, root)  # the top level, nothing started yet
        for candidate in candidates(schema, root):
            if level < len(self.containers):
                text = self._complete_container(level, candidate, root)
            else:
                text = self._complete_scalar(candidate, root)
            if text is not None:
                return text
        return None

    def _complete_container(
        self, level: int, schema: Mapping[str, Any], root: Schema
    ) -> str | None:
        container = self.containers[level]
        innermost = level == len(self.containers) - 1
        leaf = self.leaf
        has_child = not innermost or leaf is not None
        mode = None if has_child else self.mode
        if isinstance(container, dict):
            last = self.keys[level]
            return self._complete_object(level, container, last, schema, root, has_child, mode)
        placed = has_child and (not innermost or leaf == STRING)
        done = container[:-1] if placed else container
        return self._complete_array(level, done, schema, root, has_child, mode)

    def _complete_array(
        self,
        level: int,
        done: list[Any],
        schema: Mapping[str, Any],
        root: Schema,
        has_child: bool,
        mode: int | None,
    ) -> str | None:
        if not type_allows(schema, "array"):
            return None
        item_schema = item_schemas(schema)
        for index, item in enumerate(done):
            if not valid(item_schema(index), item, root):
                return None
        count = len(done)
        head: str | None = ""
        if has_child:
            head = self._complete_level(level + 1, item_schema(count), root)
            count += 1
        elif mode == VALUE:  # after ','
            head = minimal(item_schema(count), root)
            count += 1
        maximum = schema.get("maxItems")
        if head is None or (maximum is not None and count > maximum):
            return None
        extra = all_or_none(
            [minimal(item_schema(j), root) for j in range(count, schema.get("minItems", 0))]
        )
        if extra is None:
            return None
        if mode == FIRST_VALUE:
            return ",".join(extra) + "]"
        return head + "".join("," + text for text in extra) + "]"

    def _complete_object(
        self,
        level: int,
        members: dict[str, Any],
        last: str,
        schema: Mapping[str, Any],
        root: Schema,
        has_child: bool,
        mode: int | None,
    ) -> str | None:
        if not type_allows(schema, "object"):
            return None
        properties: Mapping[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties", True)

        def member_schema(key: str) -> Schema | None:
            if key in properties:
                return properties[key]
            return None if additional is False else additional

        def member(key: str) -> str | None:
            sub = member_schema(key)
            value = None if sub is None else minimal(sub, root)
            return None if value is None else f"{dumps(key)}:{value}"

        current = last if has_child or mode in (COLON, VALUE) else None
        for name, item in members.items():
            sub = member_schema(name)
            if name != current and (sub is None or not valid(sub, item, root)):
                return None
        present = set(members)
        if current is not None:
            present.add(current)
        missing = [key for key in dict.fromkeys(schema.get("required", ())) if key not in present]

        def rest(skip: str | None = None) -> str | None:
            texts = all_or_none([member(key) for key in missing if key != skip])
            return None if texts is None else "".join("," + t for t in texts) + "}"

        if current is not None:
            sub = member_schema(current)
            if sub is None:
                return None
            if has_child:
                head = self._complete_level(level + 1, sub, root)
            else:
                value = minimal(sub, root)
                head = None if value is None else (":" if mode == COLON else "") + value
            tail = rest()
            return None if head is None or tail is None else head + tail
        if mode == AFTER:
            return rest()
        if mode == FIRST_KEY or (mode == KEY and missing):
            tail = rest()
            return None if tail is None else tail[1:] if missing else tail
        options: list[str] = []
        if mode == KEY:  # after ',': some member must follow
            for key in properties:
                text = member(key) if key not in present else None
                if text is not None:
                    options.append(text + "}")
            if not options and additional is not False:
                value = minimal(additional, root)
                if value is not None:
                    end = _new_key_end("", "", present, properties)
                    options.append(f'"{end}":{value}}}')
            if not options:  # nothing left to add: repeat a member, which changes nothing
                options = [f"{dumps(name)}:{dumps(item)}}}" for name, item in members.items()]
            return min(options, key=len, default=None)
        # A key in progress: it becomes a property (a missing required one
        # first), or, where additional properties are allowed, itself.
        prefix, escape = self.text, self.escape
        for key in [*missing, *(k for k in properties if k not in present and k not in missing)]:
            key_end = _string_completion(prefix, escape, key)
            value = member(key)
            tail = rest(skip=key)
            if key_end is not None and value is not None and tail is not None:
                options.append(key_end + value[len(dumps(key)) :] + tail)
        if additional is not False:
            value = minimal(additional, root)
            tail = rest()
            if value is not None and tail is not None:
                end = _new_key_end(prefix, escape, present, properties)
                options.append(f'{end}":{value}{tail}')
        return min(options, key=len, default=None)

    def _complete_scalar(self, schema: Mapping[str, Any], root: Schema) -> str | None:
        leaf = self.leaf
        if leaf == STRING:
            if not type_allows(schema, "string"):
                return None
            prefix, escape = self.text, self.escape
            targets = allowed_values(schema)
            if targets is None:
                return _free_string_completion(
                    prefix, escape, schema.get("minLength", 0), schema.get("maxLength")
                )
            options = [
                end
                for value in targets
                if isinstance(value, str)
                and valid(schema, value, root)
                and (end := _string_completion(prefix, escape, value)) is not None
            ]
            return min(options, key=len, default=None)
        if leaf == LITERAL:
            return self.end if valid(schema, self.value, root) else None
        # A number: finish it with the fewest characters ("-" and "1." take a
        # "0"; "1e" too), or as an enum value it is a prefix of.
        raw, end = self.raw, self.end
        try:
            value = int(raw + end) if self.integral else float(raw + end)
        except ValueError:  # more digits than int() converts: no schema can be checked
            return end if not schema else None
        targets = allowed_values(schema)
        if targets is None:
            return end if valid(schema, value, root) else None
        options = []
        for target in targets:
            if isinstance(target, bool) or not isinstance(target, int | float):
                continue
            if not valid(schema, target, root):
                continue
            if same(value, target):
                options.append(end)
            text = dumps(target)
            if text.startswith(raw) and len(text) > len(raw):
                options.append(text[len(raw) :])
        return min(options, key=len, default=None)


# -- string helpers -----------------------------------------------------------


def _encodings(char: str) -> list[str]:
    """Every escape that decodes to ``char`` (hex in lower case)."""
    code = ord(char)
    found = [_SHORT_FOR[char]] if char in _SHORT_FOR else []
    if code > 0xFFFF:
        code -= 0x10000
        found.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    else:
        found.append(f"\\u{code:04x}")
    return found


def _string_completion(prefix: str, escape: str, target: str) -> str | None:
    """The text that turns a string in progress into ``target`` and closes it.

    ``prefix`` is what was decoded so far and ``escape`` the raw text of a
    pending escape; None when the target does not start that way.
    """
    if not target.startswith(prefix):
        return None
    rest = target[len(prefix) :]
    pending = escape.lower()
    end = ""
    used = 0
    while pending:
        if used >= len(rest):
            return None
        for encoding in _encodings(rest[used]):
            if encoding.startswith(pending):
                end, pending = encoding[len(pending) :], ""
                break
            if pending.startswith(encoding):
                pending = pending[len(encoding) :]
                break
        else:
            return None
        used += 1
    return end + dumps(rest[used:])[1:-1] + '"'


def _finish_escape(escape: str) -> tuple[str, str]:
    """The shortest text finishing a pending escape, and what the escape decodes to.

    A high surrogate gets a low one where its pair can still be formed.
    """
    if not escape:
        return "", ""
    start = escape.rfind("\\")
    current = escape[start:]
    paired = start > 0  # a high surrogate precedes the current escape
    if current == "\\":
        end = "udc00" if paired else "n"
    elif len(current) == 6:  # a high surrogate awaiting its pair
        end = "\\udc00"
    else:
        digits = current[2:]
        end = "0" * (4 - len(digits))
        if paired and not 0xDC00 <= int(digits + end, 16) <= 0xDFFF:
            low = "dc00"[len(digits) :]
            if 0xDC00 <= int(digits + low, 16) <= 0xDFFF:
                end = low
    decoded = json.loads(f'"{escape}{end}"')
    if 0xD800 <= ord(decoded[-1]) <= 0xDBFF:  # padding made a high surrogate
        end += "\\udc00"
        decoded = json.loads(f'"{escape}{end}"')
    return end, decoded


def _new_key_end(prefix: str, escape: str, taken: set[str], properties: Mapping[str, Any]) -> str:
    """The rest of a key in progress made a new key: neither taken nor a property.

    Returned without its closing quote; ``_`` is added until the key is new.
    """
    end, decoded = _finish_escape(escape)
    name = prefix + decoded
    while name in taken or name in properties:
        name += PAD
        end += PAD
    return end


def _free_string_completion(
    prefix: str, escape: str, min_length: int, max_length: int | None
) -> str | None:
    end, decoded = _finish_escape(escape)
    length = len(prefix) + len(decoded)
    if max_length is not None and length > max_length:
        return None
    return end + PAD * max(0, min_length - length) + '"'
