"""Incremental JSON parsing and schema-valid completion, sans-IO.

A model asked for structured output streams one JSON document a few
characters at a time. ``JSONStream`` is fed those pieces (``str``, split
anywhere: inside strings, escapes, surrogate pairs, numbers, literals or
whitespace) and keeps two things a consumer needs while the reply is still
arriving:

* ``partial``: the value parsed so far, for a live ``json_partial`` view;
* ``closing_text(schema)``: the shortest text that, appended to what was fed,
  completes a document valid against a JSON Schema, so that a reply cut short
  (Ctrl-C, a token limit, a dropped connection) can still be kept as a value
  its reader accepts.

Every character is looked at once: the parser keeps a stack of the open
containers (the very dicts and lists ``partial`` returns) and the state of the
scalar in progress, so feeding is linear in the input however it is split.

What ``partial`` shows
    ``None`` until the top-level value starts. Objects hold the members seen
    so far (a key appears once its value starts), arrays the items so far,
    and a string in progress the prefix decoded so far: an escape appears
    once complete, a high surrogate once it is known whether a low one
    follows. A number appears only once complete, i.e. after the character
    that ends it (at top level: trailing whitespace or ``close()``), and
    ``true``/``false``/``null`` once fully spelled. So nothing shown is ever
    taken back: each later ``partial`` *extends* the earlier one (objects gain
    keys, arrays gain items, the string in progress gains characters, and
    every other value stays as it was). ``partial`` is the parser's own live
    value: do not mutate it, and copy (or serialize) it to keep a snapshot.

When ``feed`` returns True
    Exactly when ``partial`` changed during that call: a value started (a
    container opened, a string value's opening quote), a string value grew,
    or a number or literal completed. Whitespace, punctuation, object keys
    and half-read escapes, numbers or literals alone return False.

Errors
    Text that is not JSON raises ``JSONStreamError`` at the first character
    that makes it so, with that character's offset in ``position`` (0-based,
    counting everything fed); any later call raises the same error. Accepted
    is exactly what ``json.loads`` accepts (lone surrogates included), except
    ``NaN`` and ``Infinity`` (not JSON) and nesting deeper than ``max_depth``.

Completion (``closing_text``)
    Schema keywords understood: ``type`` (a name or a list: nullable via
    ``["string", "null"]``), ``properties``, ``required``,
    ``additionalProperties`` (bool or schema), ``items``, ``prefixItems``,
    ``minItems``, ``maxItems``, ``minLength``, ``maxLength``, ``enum``,
    ``const``, ``anyOf`` / ``oneOf`` (the first branch, in order, whose
    completion fits what was fed; keywords beside the list are merged into
    each branch), ``allOf`` (checked on completed values only), ``$ref`` to a
    JSON pointer in the same document (``#/$defs/...``, ``#/definitions/...``,
    ``#``) and boolean schemas. Other keywords (``pattern``, ``format``,
    ``minimum``, ...) are ignored, so a completion may break them; so are
    ``enum``/``const`` on objects and arrays.

    A value still to be written is written as its *minimal value*: ``null``
    when the schema allows null (a nullable type, or no type at all: an
    absent value then reads as absent), else the ``const``, the first
    ``enum`` value, ``""`` (padded with ``_`` to ``minLength``), ``0``,
    ``false``, ``[]`` (with ``minItems`` minimal items) or ``{}`` (with each
    required key). Where the prefix leaves a choice -- the key a half-written
    key becomes, the enum value a half-written string becomes, a property to
    follow a trailing comma -- the shortest completion wins, ties going to
    required keys, then to schema order. A pending escape is finished so
    that no lone surrogate is produced where a pair can still be formed.
    Without a schema the text is closed syntactically, a missing value being
    ``null``. The output has no whitespace.

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
import re
from collections.abc import Iterator, Mapping
from typing import Any

from streamkit.errors import ProtocolError

DEFAULT_MAX_DEPTH = 128
_SCHEMA_DEPTH = 32  # $ref chains and minimal values of recursive schemas stop here

Schema = Mapping[str, Any] | bool

# Modes: what the next significant character may be.
_VALUE = 0  # a value (top level, after ':' or after ',' in an array)
_FIRST_VALUE = 1  # a value or ']' (just after '[')
_FIRST_KEY = 2  # a key or '}' (just after '{')
_KEY = 3  # a key (after ',' in an object)
_COLON = 4  # ':' after a key
_AFTER = 5  # ',' or the closing bracket, after a value inside a container
_DONE = 6  # trailing whitespace only
_STRING = 7  # inside a string (a key or a value)
_NUMBER = 8
_LITERAL = 9

_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_HEX = frozenset("0123456789abcdefABCDEF")
_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SHORT_FOR = {char: "\\" + letter for letter, char in _SHORT.items()}
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
_LITERAL_START = {"t": "true", "f": "false", "n": "null"}
_PAD = "_"

# Number states, after: '-', '0', a nonzero integer, '.', fraction digits,
# 'e', the exponent's sign, exponent digits.
_N_SIGN, _N_ZERO, _N_INT, _N_DOT, _N_FRAC, _N_E, _N_ESIGN, _N_EXP = range(8)
_DIGITS = "0123456789"


def _number_table() -> list[dict[str, int]]:
    def on(chars: str, state: int) -> dict[str, int]:
        return dict.fromkeys(chars, state)

    exp = {**on("eE", _N_E)}
    return [
        {**on("0", _N_ZERO), **on("123456789", _N_INT)},  # after '-'
        {".": _N_DOT, **exp},  # after a leading '0': no more digits
        {**on(_DIGITS, _N_INT), ".": _N_DOT, **exp},
        on(_DIGITS, _N_FRAC),
        {**on(_DIGITS, _N_FRAC), **exp},
        {**on("+-", _N_ESIGN), **on(_DIGITS, _N_EXP)},
        on(_DIGITS, _N_EXP),
        on(_DIGITS, _N_EXP),
    ]


_NUMBER_NEXT = _number_table()
_NUMBER_COMPLETE = frozenset({_N_ZERO, _N_INT, _N_FRAC, _N_EXP})
_NUMBER_INTEGRAL = frozenset({_N_SIGN, _N_ZERO, _N_INT})  # int() once completed


class JSONStreamError(ProtocolError):
    """The text fed is not JSON; ``position`` is the offending character's offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"invalid JSON at character {position}: {message}")
        self.position = position


class _Frame:
    """An open container: the live dict or list, and for an object its current key."""

    __slots__ = ("is_object", "key", "value")

    def __init__(self, value: dict[str, Any] | list[Any]) -> None:
        self.value = value
        self.is_object = isinstance(value, dict)
        self.key: str | None = None


class JSONStream:
    """Feed JSON text in pieces; read the value so far and how to complete it."""

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._stack: list[_Frame] = []
        self._mode = _VALUE
        self._root: Any = None
        self._shown = False  # the top-level value has been placed
        self._fed = 0  # characters fed before the current piece
        self._error: JSONStreamError | None = None
        self._changed = False
        # The string in progress: decoded pieces, a pending escape's raw text
        # (a high surrogate's own escape included while its pair is awaited).
        self._is_key = False
        self._chunks: list[str] = []
        self._escape = ""
        self._high: int | None = None
        self._unsynced = False  # the string value in ``partial`` is behind _chunks
        # The number or literal in progress.
        self._number: list[str] = []
        self._number_state = _N_SIGN
        self._word = ""
        self._spelled = 0

    # -- reading --------------------------------------------------------------

    @property
    def partial(self) -> Any:
        """The value parsed so far (see the module docstring); live, do not mutate."""
        if self._unsynced:
            text = "".join(self._chunks)
            self._chunks = [text]
            self._set_current(text)
            self._unsynced = False
        return self._root

    @property
    def started(self) -> bool:
        """``partial`` shows the top-level value (before that it is ``None``)."""
        return self._shown

    @property
    def done(self) -> bool:
        """A complete top-level value has been read (only whitespace may follow)."""
        return self._mode == _DONE

    @property
    def error(self) -> JSONStreamError | None:
        """The error that stopped this stream, if any."""
        return self._error

    # -- feeding --------------------------------------------------------------

    def feed(self, text: str) -> bool:
        """Parse ``text``, the next piece; True when ``partial`` changed.

        Raises ``JSONStreamError`` if the text so far is not a prefix of JSON.
        """
        if self._error is not None:
            raise self._error
        self._changed = False
        i, n = 0, len(text)
        while i < n:
            mode = self._mode
            if mode == _STRING:
                i = self._scan_string(text, i)
            elif mode == _NUMBER:
                i = self._scan_number(text, i)
            elif mode == _LITERAL:
                i = self._scan_literal(text, i)
            elif text[i] in " \t\n\r":
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
            else:
                self._punctuation(text[i], i)
                i += 1
        self._fed += n
        return self._changed

    def close(self) -> None:
        """End of input: completes a top-level number; raises unless the value is complete."""
        if self._error is not None:
            raise self._error
        if self._mode == _NUMBER and not self._stack:
            self._end_number(0)
        if self._mode != _DONE:
            what = "is missing" if self._mode == _VALUE and not self._stack else "is incomplete"
            self._fail(0, f"the JSON text ended early: the value {what}")

    def _fail(self, i: int, message: str) -> None:
        self._error = JSONStreamError(message, self._fed + i)
        raise self._error

    def _punctuation(self, c: str, i: int) -> None:
        mode = self._mode
        if mode in (_VALUE, _FIRST_VALUE):
            if c == "{" or c == "[":
                if len(self._stack) >= self.max_depth:
                    self._fail(i, f"nested deeper than {self.max_depth} levels")
                container: dict[str, Any] | list[Any] = {} if c == "{" else []
                self._place(container)
                self._stack.append(_Frame(container))
                self._mode = _FIRST_KEY if c == "{" else _FIRST_VALUE
            elif c == '"':
                self._start_string(is_key=False)
                self._place("")
            elif c == "-" or "0" <= c <= "9":
                self._number = [c]
                self._number_state = _N_SIGN if c == "-" else _N_ZERO if c == "0" else _N_INT
                self._mode = _NUMBER
            elif c in _LITERAL_START:
                self._word = _LITERAL_START[c]
                self._spelled = 1
                self._mode = _LITERAL
            elif c == "]" and mode == _FIRST_VALUE:
                self._close_container()
            elif c == "]" and self._stack and not self._stack[-1].is_object:
                self._fail(i, "a value must follow ',' (trailing comma before ']')")
            else:
                self._fail(i, f"expected a value, got {c!r}")
        elif mode in (_FIRST_KEY, _KEY):
            if c == '"':
                self._start_string(is_key=True)
            elif c == "}" and mode == _FIRST_KEY:
                self._close_container()
            elif c == "}":
                self._fail(i, "a key must follow ',' (trailing comma before '}')")
            else:
                self._fail(i, f"expected a key in double quotes, got {c!r}")
        elif mode == _COLON:
            if c != ":":
                self._fail(i, f"expected ':' after the key, got {c!r}")
            self._mode = _VALUE
        elif mode == _AFTER:
            frame = self._stack[-1]
            close = "}" if frame.is_object else "]"
            if c == ",":
                self._mode = _KEY if frame.is_object else _VALUE
            elif c == close:
                self._close_container()
            else:
                self._fail(i, f"expected ',' or '{close}', got {c!r}")
        else:  # _DONE
            self._fail(i, f"extra data after the JSON value: {c!r}")

    def _place(self, value: Any) -> None:
        """Put a value that has started (or a completed scalar) into its container."""
        if self._stack:
            frame = self._stack[-1]
            if frame.is_object:
                frame.value[frame.key] = value  # type: ignore[index]
            else:
                frame.value.append(value)  # type: ignore[union-attr]
        else:
            self._root = value
            self._shown = True
        self._changed = True

    def _set_current(self, value: Any) -> None:
        """Replace the value in progress (the last one placed) by ``value``."""
        if self._stack:
            frame = self._stack[-1]
            if frame.is_object:
                frame.value[frame.key] = value  # type: ignore[index]
            else:
                frame.value[-1] = value  # type: ignore[index]
        else:
            self._root = value

    def _value_done(self) -> None:
        self._mode = _AFTER if self._stack else _DONE

    def _close_container(self) -> None:
        self._stack.pop()
        self._value_done()

    # -- strings --------------------------------------------------------------

    def _start_string(self, is_key: bool) -> None:
        self._is_key = is_key
        self._chunks = []
        self._mode = _STRING

    def _emit(self, text: str) -> None:
        self._chunks.append(text)
        if not self._is_key:
            self._changed = self._unsynced = True

    def _scan_string(self, text: str, i: int) -> int:
        n = len(text)
        while i < n:
            if self._escape:
                i = self._escape_step(text, i)
                continue
            match = _STR_RUN.match(text, i)
            if match is not None:
                self._emit(match.group())
                i = match.end()
                continue
            c = text[i]
            if c == '"':
                self._end_string()
                return i + 1
            if c == "\\":
                self._escape = c
                i += 1
                continue
            self._fail(i, f"control character {c!r} in a string must be escaped")
        return i

    def _escape_step(self, text: str, i: int) -> int:
        """Advance the pending escape by the character at ``i``; the index after it."""
        c = text[i]
        high = self._high
        tail = self._escape[6:] if high is not None else self._escape
        if not tail:  # a high surrogate, and nothing after it yet
            if c == "\\":
                self._escape += c
                return i + 1
            self._high = None
            self._escape = ""
            self._emit(chr(high))  # type: ignore[arg-type]  # lone: c is read anew
            return i
        if tail == "\\":
            if c == "u":
                self._escape += c
                return i + 1
            char = _SHORT.get(c)
            if char is None:
                self._fail(i, f"invalid escape '\\{c}' in a string")
            if high is not None:
                self._emit(chr(high))
                self._high = None
            self._escape = ""
            self._emit(char)  # type: ignore[arg-type]
            return i + 1
        if c not in _HEX:
            self._fail(i, f"invalid \\u escape: {c!r} is not a hex digit")
        tail += c
        if len(tail) < 6:
            self._escape += c
            return i + 1
        code = int(tail[2:], 16)
        self._escape = ""
        if high is not None:
            self._high = None
            if 0xDC00 <= code <= 0xDFFF:
                self._emit(chr(0x10000 + ((high - 0xD800) << 10) + code - 0xDC00))
                return i + 1
            self._emit(chr(high))
        if 0xD800 <= code <= 0xDBFF:
            self._high = code
            self._escape = tail
        else:
            self._emit(chr(code))
        return i + 1

    def _end_string(self) -> None:
        text = "".join(self._chunks)
        self._chunks = []
        if self._is_key:
            self._stack[-1].key = text
            self._mode = _COLON
        else:
            self._set_current(text)
            self._unsynced = False
            self._value_done()

    # -- numbers and literals -------------------------------------------------

    def _scan_number(self, text: str, i: int) -> int:
        n, start, state = len(text), i, self._number_state
        while i < n:
            following = _NUMBER_NEXT[state].get(text[i])
            if following is None:
                break
            state = following
            i += 1
        self._number.append(text[start:i])
        self._number_state = state
        if i < n:
            self._end_number(i)  # text[i] is read anew in the mode that follows
        return i

    def _end_number(self, i: int) -> None:
        raw = "".join(self._number)
        if self._number_state not in _NUMBER_COMPLETE:
            self._fail(i, f"incomplete number {raw!r}")
        try:
            value = int(raw) if self._number_state in _NUMBER_INTEGRAL else float(raw)
        except ValueError:  # more digits than int() converts
            self._fail(i, f"number too long ({len(raw)} characters)")
        self._place(value)
        self._value_done()

    def _scan_literal(self, text: str, i: int) -> int:
        word, spelled, n = self._word, self._spelled, len(text)
        while i < n and spelled < len(word):
            if text[i] != word[spelled]:
                self._fail(i, f"invalid literal: expected {word!r}, got {text[i]!r}")
            spelled += 1
            i += 1
        self._spelled = spelled
        if spelled == len(word):
            self._place(_LITERALS[word])
            self._value_done()
        return i

    # -- completion -----------------------------------------------------------

    def closing_text(self, schema: Schema | None = None) -> str:
        """The shortest text completing what was fed into JSON valid against ``schema``.

        ``None`` closes syntactically. Without a valid completion, returns the
        syntactic one (see the module docstring).
        """
        if self._error is not None:
            raise self._error
        if self._mode == _DONE:
            return ""
        if schema is not None and schema is not True:
            text = self._complete_level(0, schema, schema)
            if text is not None:
                return text
        text = self._complete_level(0, True, True)
        assert text is not None  # everything fits the empty schema
        return text

    def _leaf(self) -> int | None:
        """The scalar in progress: _STRING (a value), _NUMBER, _LITERAL or None."""
        mode = self._mode
        if mode == _STRING:
            return None if self._is_key else _STRING
        return mode if mode in (_NUMBER, _LITERAL) else None

    def _complete_level(self, level: int, schema: Schema, root: Schema) -> str | None:
        """Completion of the container at ``level`` of the stack, or past its top
        (``level == len(stack)``) of the scalar in progress or the top-level value."""
        if level == len(self._stack) and self._leaf() is None:
            return _minimal(schema, root)  # the top level, nothing started yet
        for candidate in _candidates(schema, root):
            if level < len(self._stack):
                text = self._complete_container(level, candidate, root)
            else:
                text = self._complete_scalar(candidate, root)
            if text is not None:
                return text
        return None

    def _complete_container(
        self, level: int, schema: Mapping[str, Any], root: Schema
    ) -> str | None:
        frame = self._stack[level]
        innermost = level == len(self._stack) - 1
        leaf = self._leaf()
        has_child = not innermost or leaf is not None
        mode = None if has_child else self._mode
        if frame.is_object:
            return self._complete_object(level, frame, schema, root, has_child, mode)
        placed = has_child and (not innermost or leaf == _STRING)
        items: list[Any] = frame.value  # type: ignore[assignment]
        done = items[:-1] if placed else items
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
        if not _type_allows(schema, "array"):
            return None
        item_schema = _item_schemas(schema)
        for index, item in enumerate(done):
            if not _valid(item_schema(index), item, root):
                return None
        count = len(done)
        head: str | None = ""
        if has_child:
            head = self._complete_level(level + 1, item_schema(count), root)
            count += 1
        elif mode == _VALUE:  # after ','
            head = _minimal(item_schema(count), root)
            count += 1
        maximum = schema.get("maxItems")
        if head is None or (maximum is not None and count > maximum):
            return None
        extra = [_minimal(item_schema(j), root) for j in range(count, schema.get("minItems", 0))]
        if None in extra:
            return None
        if mode == _FIRST_VALUE:
            return ",".join(extra) + "]"  # type: ignore[arg-type]
        return head + "".join("," + text for text in extra) + "]"  # type: ignore[operator]

    def _complete_object(
        self,
        level: int,
        frame: _Frame,
        schema: Mapping[str, Any],
        root: Schema,
        has_child: bool,
        mode: int | None,
    ) -> str | None:
        if not _type_allows(schema, "object"):
            return None
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties", True)

        def member_schema(key: str) -> Schema | None:
            if key in properties:
                return properties[key]
            return None if additional is False else additional

        def member(key: str) -> str | None:
            sub = member_schema(key)
            value = None if sub is None else _minimal(sub, root)
            return None if value is None else f"{_dumps(key)}:{value}"

        current = frame.key if has_child or mode in (_COLON, _VALUE) else None
        members: dict[str, Any] = frame.value  # type: ignore[assignment]
        for name, item in members.items():
            sub = member_schema(name)
            if name != current and (sub is None or not _valid(sub, item, root)):
                return None
        present = set(members)
        if current is not None:
            present.add(current)
        missing = [key for key in dict.fromkeys(schema.get("required", ())) if key not in present]

        def rest(skip: str | None = None) -> str | None:
            texts = [member(key) for key in missing if key != skip]
            return None if None in texts else "".join("," + t for t in texts) + "}"  # type: ignore[operator]

        if current is not None:
            sub = member_schema(current)
            if sub is None:
                return None
            if has_child:
                head = self._complete_level(level + 1, sub, root)
            else:
                value = _minimal(sub, root)
                head = None if value is None else (":" if mode == _COLON else "") + value
            tail = rest()
            return None if head is None or tail is None else head + tail
        if mode == _AFTER:
            return rest()
        if mode == _FIRST_KEY or (mode == _KEY and missing):
            tail = rest()
            return None if tail is None else tail[1:] if missing else tail
        options: list[str] = []
        if mode == _KEY:  # after ',': some member must follow
            for key in properties:
                text = member(key) if key not in present else None
                if text is not None:
                    options.append(text + "}")
            if not options and additional is not False:
                value = _minimal(additional, root)
                if value is not None:
                    end = _new_key_end("", "", present, properties)
                    options.append(f'"{end}":{value}}}')
            if not options:  # nothing left to add: repeat a member, which changes nothing
                options = [f"{_dumps(name)}:{_dumps(item)}}}" for name, item in members.items()]
            return min(options, key=len, default=None)
        # A key in progress: it becomes a property (a missing required one
        # first), or, where additional properties are allowed, itself.
        prefix, escape = "".join(self._chunks), self._escape
        for key in [*missing, *(k for k in properties if k not in present and k not in missing)]:
            end = _string_completion(prefix, escape, key)
            value = member(key)
            tail = rest(skip=key)
            if end is not None and value is not None and tail is not None:
                options.append(end + value[len(_dumps(key)) :] + tail)
        if additional is not False:
            value = _minimal(additional, root)
            tail = rest()
            if value is not None and tail is not None:
                end = _new_key_end(prefix, escape, present, properties)
                options.append(f'{end}":{value}{tail}')
        return min(options, key=len, default=None)

    def _complete_scalar(self, schema: Mapping[str, Any], root: Schema) -> str | None:
        leaf = self._leaf()
        if leaf == _STRING:
            if not _type_allows(schema, "string"):
                return None
            prefix, escape = "".join(self._chunks), self._escape
            targets = _allowed_values(schema)
            if targets is None:
                return _free_string_completion(
                    prefix, escape, schema.get("minLength", 0), schema.get("maxLength")
                )
            options = [
                end
                for value in targets
                if isinstance(value, str)
                and _valid(schema, value, root)
                and (end := _string_completion(prefix, escape, value)) is not None
            ]
            return min(options, key=len, default=None)
        if leaf == _LITERAL:
            value = _LITERALS[self._word]
            return self._word[self._spelled :] if _valid(schema, value, root) else None
        # A number: finish it with the fewest characters ("-" and "1." take a
        # "0"; "1e" too), or as an enum value it is a prefix of.
        raw = "".join(self._number)
        state = self._number_state
        end = "" if state in _NUMBER_COMPLETE else "0"
        try:
            value = int(raw + end) if state in _NUMBER_INTEGRAL else float(raw + end)
        except ValueError:  # more digits than int() converts: no schema can be checked
            return end if not schema else None
        targets = _allowed_values(schema)
        if targets is None:
            return end if _valid(schema, value, root) else None
        options = []
        for target in targets:
            if isinstance(target, bool) or not isinstance(target, int | float):
                continue
            if not _valid(schema, target, root):
                continue
            if _same(value, target):
                options.append(end)
            text = _dumps(target)
            if text.startswith(raw) and len(text) > len(raw):
                options.append(text[len(raw) :])
        return min(options, key=len, default=None)


# -- schema helpers -----------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _deref(root: Schema, ref: str) -> Schema:
    """The schema a same-document ``$ref`` points to; anything else: the empty schema."""
    if not ref.startswith("#"):
        return True
    target: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return True
    return target if isinstance(target, Mapping | bool) else True


def _candidates(schema: Schema, root: Schema, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """The alternatives a schema allows, in order, each with one type at most.

    ``$ref`` is followed, ``anyOf``/``oneOf`` are split into their branches
    (with the keywords beside them merged in), and a list of types into one
    schema per type.
    """
    if schema is False or depth > _SCHEMA_DEPTH:
        return
    if not isinstance(schema, Mapping):
        yield {}
        return
    if "$ref" in schema:
        target = _deref(root, schema["$ref"])
        if target is False:
            return
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        merged = {**target, **rest} if isinstance(target, Mapping) else rest
        yield from _candidates(merged, root, depth + 1)
        return
    for word in ("anyOf", "oneOf"):
        if word in schema:
            base = {k: v for k, v in schema.items() if k != word}
            for branch in schema[word]:
                if branch is not False:
                    merged = {**base, **branch} if isinstance(branch, Mapping) else base
                    yield from _candidates(merged, root, depth + 1)
            return
    types = schema.get("type")
    if isinstance(types, list):
        for name in types:
            yield {**schema, "type": name}
    else:
        yield schema


def _type_allows(schema: Mapping[str, Any], name: str) -> bool:
    types = schema.get("type")
    if types is None:
        return True
    return name in types if isinstance(types, list) else name == types


def _allowed_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if enum is not None else None


def _item_schemas(schema: Mapping[str, Any]) -> Any:
    positional = schema.get("prefixItems") or []
    rest = schema.get("items", True)
    if isinstance(rest, list):  # the older tuple form
        positional, rest = rest, schema.get("additionalItems", True)

    def item_schema(index: int) -> Schema:
        return positional[index] if index < len(positional) else rest

    return item_schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _valid(schema: Schema, value: Any, root: Schema, depth: int = 0) -> bool:
    """``value`` (complete) is valid against ``schema``, for the keywords understood."""
    if schema is True or not isinstance(schema, Mapping):
        return schema is not False
    if depth > 4 * _SCHEMA_DEPTH:
        return True
    deeper = depth + 1
    if "$ref" in schema and not _valid(_deref(root, schema["$ref"]), value, root, deeper):
        return False
    kind = _json_type(value)
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if kind not in names and not (kind == "integer" and "number" in names):
            return False
    if "const" in schema and not _same(value, schema["const"]):
        return False
    if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
        return False
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            return False
        if len(value) > schema.get("maxLength", len(value)):
            return False
    elif kind == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        item_schema = _item_schemas(schema)
        if not all(_valid(item_schema(i), v, root, deeper) for i, v in enumerate(value)):
            return False
    elif kind == "object":
        if any(key not in value for key in schema.get("required", ())):
            return False
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = properties.get(key, additional)
            if not _valid(sub, item, root, deeper):
                return False
    if "allOf" in schema and not all(_valid(s, value, root, deeper) for s in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(_valid(s, value, root, deeper) for s in schema["anyOf"]):
        return False
    return "oneOf" not in schema or (
        sum(_valid(s, value, root, deeper) for s in schema["oneOf"]) == 1
    )


def _allows_null(schema: Mapping[str, Any]) -> bool:
    values = _allowed_values(schema)
    if values is not None:
        return any(v is None for v in values)
    return _type_allows(schema, "null")


def _minimal(schema: Schema, root: Schema, depth: int = 0) -> str | None:
    """The JSON text of the minimal value valid against ``schema``, or None."""
    if depth > _SCHEMA_DEPTH:
        return None
    candidates = list(_candidates(schema, root))
    if any(_allows_null(c) for c in candidates):
        return "null"
    for candidate in candidates:
        text = _minimal_of(candidate, root, depth)
        if text is not None:
            return text
    return None


def _minimal_of(schema: Mapping[str, Any], root: Schema, depth: int) -> str | None:
    values = _allowed_values(schema)
    if values is not None:
        return next((_dumps(v) for v in values if _valid(schema, v, root)), None)
    kind = schema.get("type")
    if kind == "string":
        length = schema.get("minLength", 0)
        return None if length > schema.get("maxLength", length) else f'"{_PAD * length}"'
    if kind in ("integer", "number"):
        return "0"
    if kind == "boolean":
        return "false"
    if kind == "array":
        count = schema.get("minItems", 0)
        if count > schema.get("maxItems", count):
            return None
        item_schema = _item_schemas(schema)
        items = [_minimal(item_schema(i), root, depth + 1) for i in range(count)]
        return None if None in items else "[" + ",".join(items) + "]"  # type: ignore[arg-type]
    if kind == "object":
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties", True)
        members = []
        for key in dict.fromkeys(schema.get("required", ())):
            sub = properties.get(key, additional)
            value = _minimal(sub, root, depth + 1)
            if value is None:
                return None
            members.append(f"{_dumps(key)}:{value}")
        return "{" + ",".join(members) + "}"
    return "null"


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
    return end + _dumps(rest[used:])[1:-1] + '"'


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
        name += _PAD
        end += _PAD
    return end


def _free_string_completion(
    prefix: str, escape: str, min_length: int, max_length: int | None
) -> str | None:
    end, decoded = _finish_escape(escape)
    length = len(prefix) + len(decoded)
    if max_length is not None and length > max_length:
        return None
    return end + _PAD * max(0, min_length - length) + '"'
