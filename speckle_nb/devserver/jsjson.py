"""Request bodies as Express's ``express.json()`` reads them, down to V8's words.

A malformed JSON body is answered ``400 {"error":{"message":"Invalid request body:
<message>"}}`` and the message is Node's ``JSON.parse`` error (V8), passed through
body-parser's strict mode (the body must start with ``{`` or ``[``). Python's
``json`` words its errors differently, so this module checks a body the way V8's
parser walks it and words the first error as V8 does. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re

_WHITESPACE = " \t\n\r"
_CONTEXT = 10  # V8: characters of context on each side of the bad token
_MIN_FOR_CONTEXT = 2 * _CONTEXT + 1  # shorter sources are quoted whole
_ESCAPES = '"\\/bfnrtu'
EOS_MESSAGE = "Unexpected end of JSON input"


class JsonBodyError(ValueError):
    """A body ``express.json`` refuses; ``message`` is the text after "Invalid request body: "."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_body(raw: bytes) -> object:
    """``express.json()`` (strict): ``{}`` for an empty body, else an object or array."""
    if not raw:
        return {}
    # iconv-lite (body-parser's decoder) replaces bad bytes with U+FFFD, as this does.
    text = raw.decode("utf-8", "replace")
    first = text.lstrip(_WHITESPACE)[:1]
    if first not in ("{", "["):
        raise JsonBodyError(_strict_violation(text, first))
    problem = v8_parse_error(text)
    if problem is not None:
        raise JsonBodyError(problem)
    return json.loads(text)


def _strict_violation(text: str, first: str) -> str:
    """body-parser's ``createStrictSyntaxError``: parse the body with everything from its
    first character on replaced by ``#``, then put the original characters back."""
    index = text.find(first) if first else -1
    partial = "" if index < 0 else text[:index] + "#" * (len(text) - index)
    message = v8_parse_error(partial) or EOS_MESSAGE
    return re.sub(r"#+", lambda m: text[index : index + len(m.group())], message)


def _digit(char: str) -> bool:
    return char != "" and char in "0123456789"


class _Fail(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def v8_parse_error(text: str) -> str | None:
    """V8's ``JSON.parse`` error message for ``text``, or None when it parses."""
    try:
        _Parser(text).parse()
    except _Fail as fail:
        return fail.message
    return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0

    # -- reporting, after V8's ReportUnexpectedToken ----------------------------------------

    def _at(self, template: str, pos: int | None = None) -> _Fail:
        where = self.pos if pos is None else pos
        line = self.s.count("\n", 0, where) + 1
        column = where - (self.s.rfind("\n", 0, where) + 1) + 1
        return _Fail(f"{template} in JSON at position {where} (line {line} column {column})")

    def _unexpected(self) -> _Fail:
        """No specific message: end of input, a number, a string, or a character."""
        s, pos = self.s, self.pos
        if pos >= len(s):
            return _Fail(EOS_MESSAGE)
        char = s[pos]
        if char == '"':
            return self._at("Unexpected string")
        if char == "-" or _digit(char):
            return self._at("Unexpected number")
        if len(s) < _MIN_FOR_CONTEXT:
            return _Fail(f"Unexpected token '{char}', \"{s}\" is not valid JSON")
        if pos < _CONTEXT:
            return _Fail(
                f"Unexpected token '{char}', \"{s[: pos + _CONTEXT]}\"... is not valid JSON"
            )
        if pos < len(s) - _CONTEXT:
            part = s[pos - _CONTEXT : pos + _CONTEXT]
            return _Fail(f"Unexpected token '{char}', ...\"{part}\"... is not valid JSON")
        return _Fail(f"Unexpected token '{char}', ...\"{s[pos - _CONTEXT :]}\" is not valid JSON")

    # -- grammar ------------------------------------------------------------------------------

    def _skip(self) -> None:
        while self.pos < len(self.s) and self.s[self.pos] in _WHITESPACE:
            self.pos += 1

    def _peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def parse(self) -> None:
        self._value()
        self._skip()
        if self.pos < len(self.s):
            raise self._at("Unexpected non-whitespace character after JSON")

    def _value(self) -> None:
        self._skip()
        char = self._peek()
        if char == "{":
            self._object()
        elif char == "[":
            self._array()
        elif char == '"':
            self._string()
        elif char == "-" or _digit(char):
            self._number()
        elif char in ("t", "f", "n"):
            self._literal({"t": "true", "f": "false", "n": "null"}[char])
        else:
            raise self._unexpected()

    def _object(self) -> None:
        self.pos += 1
        self._skip()
        if self._peek() == "}":
            self.pos += 1
            return
        if self._peek() != '"':
            raise self._at("Expected property name or '}'")
        while True:
            self._string()
            self._skip()
            if self._peek() != ":":
                raise self._at("Expected ':' after property name")
            self.pos += 1
            self._value()
            self._skip()
            if self._peek() == ",":
                self.pos += 1
                self._skip()
                if self._peek() != '"':
                    raise self._at("Expected double-quoted property name")
                continue
            if self._peek() != "}":
                raise self._at("Expected ',' or '}' after property value")
            self.pos += 1
            return

    def _array(self) -> None:
        self.pos += 1
        self._skip()
        if self._peek() == "]":
            self.pos += 1
            return
        while True:
            self._value()
            self._skip()
            if self._peek() == ",":
                self.pos += 1
                continue
            if self._peek() != "]":
                raise self._at("Expected ',' or ']' after array element")
            self.pos += 1
            return

    def _string(self) -> None:
        s = self.s
        self.pos += 1
        while True:
            if self.pos >= len(s):
                raise self._at("Unterminated string")
            char = s[self.pos]
            if char == '"':
                self.pos += 1
                return
            if char < " ":
                raise self._at("Bad control character in string literal")
            if char == "\\":
                self.pos += 1
                escaped = self._peek()
                if not escaped:
                    raise self._at("Unterminated string")
                if escaped not in _ESCAPES:
                    raise self._at("Bad escaped character")
                if escaped == "u":
                    digits = s[self.pos + 1 : self.pos + 5]
                    if len(digits) < 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                        raise self._at("Bad Unicode escape")
                    self.pos += 4
            self.pos += 1

    def _number(self) -> None:
        if self._peek() == "-":
            self.pos += 1
            if not _digit(self._peek()):
                raise self._at("No number after minus sign")
        if self._peek() == "0":
            self.pos += 1
            if _digit(self._peek()):
                raise self._unexpected()
        else:
            while _digit(self._peek()):
                self.pos += 1
        if self._peek() == ".":
            self.pos += 1
            if not _digit(self._peek()):
                raise self._at("Unterminated fractional number")
            while _digit(self._peek()):
                self.pos += 1
        if self._peek() in ("e", "E"):
            self.pos += 1
            if self._peek() in ("+", "-"):
                self.pos += 1
            if not _digit(self._peek()):
                raise self._at("Exponent part is missing a number")
            while _digit(self._peek()):
                self.pos += 1

    def _literal(self, word: str) -> None:
        for expected in word:
            if self._peek() != expected:
                raise self._unexpected()
            self.pos += 1
