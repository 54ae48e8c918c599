"""Incremental JSON parsing, sans-IO: the value so far of a document still arriving.

A model asked for structured output streams one JSON document a few
characters at a time. ``JSONStream`` is fed those pieces (split anywhere:
inside strings, escapes, surrogate pairs, numbers, literals or whitespace)
and offers ``partial``, the value parsed so far (a live ``json_partial``
view), and ``closing_text(schema)``, the shortest text completing what was
fed into a document valid against a JSON Schema, so a reply cut short can
still be kept as a value (computed by ``streamkit.protocol.json_close``).
Each character is looked at once, so feeding is linear however it is split.

What ``partial`` shows
    ``None`` until the top-level value starts; then objects with the members
    seen so far (a key once its value starts), arrays with their items, a
    string in progress as its decoded prefix (an escape once complete, a high
    surrogate once it is known whether a low one follows), a number once the
    character after it arrives (at top level: whitespace or ``close()``),
    ``true``/``false``/``null`` once spelled. Nothing shown is taken back:
    each later ``partial`` extends the earlier one. It is the parser's own
    live value: do not mutate it; copy or serialize it to keep a snapshot.

``feed`` returns True exactly when ``partial`` changed (a value started, a
string value grew, a number or literal completed). Text that is not JSON
raises ``JSONStreamError`` at its first offending character (``position``:
its offset in all that was fed), and so does every later call. Accepted is
what ``json.loads`` accepts, except ``NaN``, ``Infinity`` and nesting deeper
than ``max_depth``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from streamkit.protocol.json_close import Unfinished
from streamkit.protocol.json_lex import (
    AFTER,
    COLON,
    DONE,
    ESCAPES,
    FIRST_KEY,
    FIRST_VALUE,
    HEX,
    KEY,
    LITERAL,
    LITERAL_START,
    LITERALS,
    N_INT,
    N_SIGN,
    N_ZERO,
    NUMBER,
    NUMBER_COMPLETE,
    NUMBER_INTEGRAL,
    NUMBER_NEXT,
    STR_RUN,
    STRING,
    VALUE,
    WS,
    ArrayFrame,
    Frame,
    JSONStreamError,
    ObjectFrame,
)
from streamkit.protocol.json_schema import Schema

DEFAULT_MAX_DEPTH = 128


class JSONStream:
    """Feed JSON text in pieces; read the value so far and how to complete it."""

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._stack: list[Frame] = []
        self._mode = VALUE
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
        self._number_state = N_SIGN
        self._word = ""
        self._spelled = 0

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
        return self._mode == DONE

    @property
    def error(self) -> JSONStreamError | None:
        """The error that stopped this stream, if any."""
        return self._error

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
            if mode == STRING:
                i = self._scan_string(text, i)
            elif mode == NUMBER:
                i = self._scan_number(text, i)
            elif mode == LITERAL:
                i = self._scan_literal(text, i)
            elif text[i] in " \t\n\r":
                match = WS.match(text, i)
                assert match is not None  # the pattern also matches nothing
                i = match.end()
            else:
                self._punctuation(text[i], i)
                i += 1
        self._fed += n
        return self._changed

    def close(self) -> None:
        """End of input: completes a top-level number; raises unless the value is complete."""
        if self._error is not None:
            raise self._error
        if self._mode == NUMBER and not self._stack:
            self._end_number(0)
        if self._mode != DONE:
            what = "is missing" if self._mode == VALUE and not self._stack else "is incomplete"
            self._fail(0, f"the JSON text ended early: the value {what}")

    def _fail(self, i: int, message: str) -> NoReturn:
        self._error = JSONStreamError(message, self._fed + i)
        raise self._error

    def _punctuation(self, c: str, i: int) -> None:
        mode = self._mode
        if mode in (VALUE, FIRST_VALUE):
            if c == "{" or c == "[":
                if len(self._stack) >= self.max_depth:
                    self._fail(i, f"nested deeper than {self.max_depth} levels")
                frame: Frame = ObjectFrame({}) if c == "{" else ArrayFrame([])
                self._place(frame.value)
                self._stack.append(frame)
                self._mode = FIRST_KEY if c == "{" else FIRST_VALUE
            elif c == '"':
                self._start_string(is_key=False)
                self._place("")
            elif c == "-" or "0" <= c <= "9":
                self._number = [c]
                self._number_state = N_SIGN if c == "-" else N_ZERO if c == "0" else N_INT
                self._mode = NUMBER
            elif c in LITERAL_START:
                self._word = LITERAL_START[c]
                self._spelled = 1
                self._mode = LITERAL
            elif c == "]" and mode == FIRST_VALUE:
                self._close_container()
            elif c == "]" and self._stack and isinstance(self._stack[-1], ArrayFrame):
                self._fail(i, "a value must follow ',' (trailing comma before ']')")
            else:
                self._fail(i, f"expected a value, got {c!r}")
        elif mode in (FIRST_KEY, KEY):
            if c == '"':
                self._start_string(is_key=True)
            elif c == "}" and mode == FIRST_KEY:
                self._close_container()
            elif c == "}":
                self._fail(i, "a key must follow ',' (trailing comma before '}')")
            else:
                self._fail(i, f"expected a key in double quotes, got {c!r}")
        elif mode == COLON:
            if c != ":":
                self._fail(i, f"expected ':' after the key, got {c!r}")
            self._mode = VALUE
        elif mode == AFTER:
            is_object = isinstance(self._stack[-1], ObjectFrame)
            close = "}" if is_object else "]"
            if c == ",":
                self._mode = KEY if is_object else VALUE
            elif c == close:
                self._close_container()
            else:
                self._fail(i, f"expected ',' or '{close}', got {c!r}")
        else:  # DONE
            self._fail(i, f"extra data after the JSON value: {c!r}")

    def _place(self, value: Any) -> None:
        """Put a value that has started (or a completed scalar) into its container."""
        if self._stack:
            frame = self._stack[-1]
            if isinstance(frame, ObjectFrame):
                frame.value[frame.key] = value
            else:
                frame.value.append(value)
        else:
            self._root = value
            self._shown = True
        self._changed = True

    def _set_current(self, value: Any) -> None:
        """Replace the value in progress (the last one placed) by ``value``."""
        if self._stack:
            frame = self._stack[-1]
            if isinstance(frame, ObjectFrame):
                frame.value[frame.key] = value
            else:
                frame.value[-1] = value
        else:
            self._root = value

    def _value_done(self) -> None:
        self._mode = AFTER if self._stack else DONE

    def _close_container(self) -> None:
        self._stack.pop()
        self._value_done()

    def _start_string(self, is_key: bool) -> None:
        self._is_key = is_key
        self._chunks = []
        self._mode = STRING

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
            match = STR_RUN.match(text, i)
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
        if high is None:
            tail = self._escape
        else:
            tail = self._escape[6:]
            if not tail:  # a high surrogate, and nothing after it yet
                if c == "\\":
                    self._escape += c
                    return i + 1
                self._high = None
                self._escape = ""
                self._emit(chr(high))  # lone: c is read anew
                return i
        if tail == "\\":
            if c == "u":
                self._escape += c
                return i + 1
            char = ESCAPES.get(c)
            if char is None:
                self._fail(i, f"invalid escape '\\{c}' in a string")
            if high is not None:
                self._emit(chr(high))
                self._high = None
            self._escape = ""
            self._emit(char)
            return i + 1
        if c not in HEX:
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
            frame = self._stack[-1]
            assert isinstance(frame, ObjectFrame)  # keys are read in objects only
            frame.key = text
            self._mode = COLON
        else:
            self._set_current(text)
            self._unsynced = False
            self._value_done()

    def _scan_number(self, text: str, i: int) -> int:
        n, start, state = len(text), i, self._number_state
        while i < n:
            following = NUMBER_NEXT[state].get(text[i])
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
        if self._number_state not in NUMBER_COMPLETE:
            self._fail(i, f"incomplete number {raw!r}")
        try:
            value = int(raw) if self._number_state in NUMBER_INTEGRAL else float(raw)
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
            self._place(LITERALS[word])
            self._value_done()
        return i

    def closing_text(self, schema: Schema | None = None) -> str:
        """The shortest text completing what was fed into JSON valid against ``schema``.

        ``None`` closes syntactically. Without a valid completion, returns the
        syntactic one (see ``streamkit.protocol.json_close``).
        """
        if self._error is not None:
            raise self._error
        mode = self._mode
        if mode == DONE:
            return ""
        stack = self._stack
        keys = [frame.key if isinstance(frame, ObjectFrame) else "" for frame in stack]
        document = Unfinished([frame.value for frame in stack], keys, mode, self._is_key)
        if mode == STRING:
            document.text, document.escape = "".join(self._chunks), self._escape
        elif mode == NUMBER:
            document.raw = "".join(self._number)
            document.end = "" if self._number_state in NUMBER_COMPLETE else "0"
            document.integral = self._number_state in NUMBER_INTEGRAL
        elif mode == LITERAL:
            document.end, document.value = self._word[self._spelled :], LITERALS[self._word]
        return document.closing_text(schema)
