"""The SSI parser as nginx's ngx_http_ssi_parse: a sans-IO state machine over a response body.

`feed(data)` returns a list of events, in order:

    bytes                       text to copy
    Command(name, params)       a complete `<!--#name key="value" ... -->` (params: [(key, value)])
    ERROR                       a malformed command, consumed up to its `-->` (nginx prints
                                the errmsg in its place)

States are nginx's (ssi_start_state ... ssi_error_end1_state), and so are its rules:
- a command starts at `<!--#`; whitespace may follow `#`; the name ends at whitespace or `-`;
  parameters are key=value with the value in double or single quotes; a backslash in a value
  is kept with the character after it (the command's handler removes escapes, as nginx's
  ngx_http_ssi_evaluate_string does);
- names are at most 32 bytes (COMMAND_LEN), keys 32 (PARAM_LEN), values `value_len`
  (ssi_value_length, 256 by default): longer is an error;
- a `<` inside a partial `<!--` restarts the match; anything else makes it text again;
- bytes of a partial `<!--` or an unfinished command are held across reads (a command may be
  split anywhere); at the end of the body nginx drops them, and so does `finish()`.
"""
from __future__ import annotations

from enum import IntEnum

COMMAND_LEN = 32
PARAM_LEN = 32
WS = frozenset(b" \r\n\t")


class State(IntEnum):
    START = 0
    TAG = 1
    COMMENT0 = 2
    COMMENT1 = 3
    SHARP = 4
    PRECOMMAND = 5
    COMMAND = 6
    PREPARAM = 7
    PARAM = 8
    PREEQUAL = 9
    PREVALUE = 10
    DOUBLE_QUOTED_VALUE = 11
    QUOTED_VALUE = 12
    QUOTED_SYMBOL = 13
    POSTPARAM = 14
    COMMENT_END0 = 15
    COMMENT_END1 = 16
    ERROR = 17
    ERROR_END0 = 18
    ERROR_END1 = 19


class Command:
    __slots__ = ("name", "params")

    def __init__(self, name: str, params: list) -> None:
        self.name = name
        self.params = params

    def __eq__(self, other) -> bool:
        return isinstance(other, Command) and (self.name, self.params) == (other.name,
                                                                           other.params)

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {self.params!r})"


ERROR = "error"

# the "<!--" prefix states: what was held is text again on anything unexpected
_PREFIX_NEXT = {State.TAG: (ord("!"), State.COMMENT0), State.COMMENT0: (ord("-"), State.COMMENT1),
                State.COMMENT1: (ord("-"), State.SHARP), State.SHARP: (ord("#"), State.PRECOMMAND)}


class SsiParser:
    __slots__ = ("state", "held", "command", "key", "value", "params", "value_len",
                 "saved_state", "errors")

    def __init__(self, value_len: int = 256) -> None:
        self.state = State.START
        self.held = b""             # a partial "<!--" (text if it does not become a command)
        self.command = bytearray()
        self.key = bytearray()
        self.value = bytearray()
        self.params: list = []
        self.value_len = value_len
        self.saved_state = State.DOUBLE_QUOTED_VALUE
        self.errors: list = []      # messages for the error log (nginx logs them at [error])

    def feed(self, data: bytes) -> list:
        events: list = []
        n = len(data)
        i = 0
        text_start = 0          # the start of text not yet emitted (state START)
        state = self.state
        while i < n:
            if state == State.START:
                j = data.find(b"<", i)
                if j < 0:
                    i = n
                    break
                if j > text_start:
                    events.append(data[text_start:j])
                self.held = b"<"
                state = State.TAG
                i = j + 1
                continue
            ch = data[i]
            i += 1
            if state <= State.SHARP:
                want, nxt = _PREFIX_NEXT[state]
                if ch == want:
                    if nxt == State.PRECOMMAND:
                        self.held = b""
                        self.command = bytearray()
                        self.params = []
                    else:
                        self.held += bytes((ch,))
                    state = nxt
                elif ch == 0x3C:        # '<': the held bytes are text, a new tag starts
                    if self.held:
                        events.append(self.held)
                    self.held = b"<"
                    state = State.TAG
                else:
                    if self.held:
                        events.append(self.held)
                    self.held = b""
                    state = State.START
                    text_start = i - 1
                continue
            state = self._command_byte(state, ch, events)
            if state == State.START:
                text_start = i
        if state == State.START and text_start < n:
            events.append(data[text_start:n] if text_start else data)
        self.state = state
        return events

    def finish(self) -> list:
        """The end of the body: held bytes are dropped, as nginx does."""
        self.held = b""
        self.state = State.START
        return []

    def _error(self, message: str) -> None:
        self.errors.append(message)

    def _command_byte(self, state: State, ch: int, events: list) -> State:
        S = State
        ws = ch in WS
        if state == S.PRECOMMAND:
            if ws:
                return state
            self.command = bytearray((ch,))
            return S.COMMAND
        if state == S.COMMAND:
            if ws:
                return S.PREPARAM
            if ch == 0x2D:
                return S.COMMENT_END0
            if len(self.command) == COMMAND_LEN:
                self._error(f'the "{_s(self.command)}{chr(ch)}..." SSI command is too long')
                return S.ERROR
            self.command.append(ch)
            return state
        if state == S.PREPARAM:
            if ws:
                return state
            if ch == 0x2D:
                return S.COMMENT_END0
            self.key = bytearray((ch,))
            self.value = bytearray()
            self.params.append(None)
            return S.PARAM
        if state == S.PARAM:
            if ws:
                return S.PREEQUAL
            if ch == 0x3D:
                return S.PREVALUE
            if ch == 0x2D:
                self._error(f'unexpected "-" symbol after "{_s(self.key)}" parameter in '
                            f'"{_s(self.command)}" SSI command')
                return S.ERROR_END0
            if len(self.key) == PARAM_LEN:
                self._error(f'too long "{_s(self.key)}{chr(ch)}..." parameter in '
                            f'"{_s(self.command)}" SSI command')
                return S.ERROR
            self.key.append(ch)
            return state
        if state == S.PREEQUAL or state == S.PREVALUE:
            if ws:
                return state
            if state == S.PREEQUAL and ch == 0x3D:
                return S.PREVALUE
            if state == S.PREVALUE and ch == 0x22:
                return S.DOUBLE_QUOTED_VALUE
            if state == S.PREVALUE and ch == 0x27:
                return S.QUOTED_VALUE
            where = "after" if state == S.PREEQUAL else "before value of"
            self._error(f'unexpected "{chr(ch)}" symbol {where} "{_s(self.key)}" parameter in '
                        f'"{_s(self.command)}" SSI command')
            return S.ERROR_END0 if ch == 0x2D else S.ERROR
        if state == S.DOUBLE_QUOTED_VALUE or state == S.QUOTED_VALUE:
            quote = 0x22 if state == S.DOUBLE_QUOTED_VALUE else 0x27
            if ch == quote:
                self.params[-1] = (_s(self.key), _s(self.value))
                return S.POSTPARAM
            nxt = state
            if ch == 0x5C:
                self.saved_state = state
                nxt = S.QUOTED_SYMBOL
            return self._value_byte(ch, nxt)
        if state == S.QUOTED_SYMBOL:
            return self._value_byte(ch, self.saved_state)
        if state == S.POSTPARAM:
            if ws:
                return S.PREPARAM
            if ch == 0x2D:
                return S.COMMENT_END0
            self._error(f'unexpected "{chr(ch)}" symbol after "{_s(self.value)}" value of '
                        f'"{_s(self.key)}" parameter in "{_s(self.command)}" SSI command')
            return S.ERROR
        if state == S.COMMENT_END0:
            if ch == 0x2D:
                return S.COMMENT_END1
            self._error(f'unexpected "{chr(ch)}" symbol in "{_s(self.command)}" SSI command')
            return S.ERROR
        if state == S.COMMENT_END1:
            if ch == 0x3E:
                events.append(Command(_s(self.command), self.params))
                return S.START
            self._error(f'unexpected "{chr(ch)}" symbol in "{_s(self.command)}" SSI command')
            return S.ERROR
        if state == S.ERROR:
            return S.ERROR_END0 if ch == 0x2D else state
        if state == S.ERROR_END0:
            return S.ERROR_END1 if ch == 0x2D else S.ERROR
        # ERROR_END1
        if ch == 0x3E:
            events.append(ERROR)
            return S.START
        return S.ERROR

    def _value_byte(self, ch: int, nxt: State) -> State:
        if len(self.value) == self.value_len:
            self._error(f'too long "{_s(self.value)}{chr(ch)}..." value of "{_s(self.key)}" '
                        f'parameter in "{_s(self.command)}" SSI command')
            return State.ERROR
        self.value.append(ch)
        return nxt


def _s(b) -> str:
    return bytes(b).decode("latin-1")
