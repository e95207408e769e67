"""Names are data: what an agency, a bucket or a config file names is shown as text, never obeyed by a terminal.

A file name may hold an escape sequence that clears the line, moves the cursor or sets the window title, a
carriage return that lets the rest of the name overwrite what came before, a newline that starts a line of its
own, or a bidi override that shows its characters in another order. `printable` shows each of those as a
visible escape (\\x1b, \\r, \\u202e), so what the reader sees is what the name holds.
"""

from __future__ import annotations

import logging

# Unicode's explicit direction marks, embeddings, overrides and isolates, and the two separators some
# terminals take for a line break.
_INVISIBLE_LAYOUT = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]

_ESCAPES = {
    **{c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]},
    **{c: f"\\u{c:04x}" for c in _INVISIBLE_LAYOUT},
    # Bytes of a name that are not UTF-8 arrive as lone surrogates, which no terminal encoding can write.
    **{c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)},
}


def printable(value: object) -> str:
    """`value` as one line of text for a terminal or a plain-text file: control characters, DEL, C1 controls,
    bidi controls and undecodable bytes become visible escapes; everything else is left as it is."""
    return str(value).translate(_ESCAPES)


def printable_lines(text: str) -> str:
    """`text` with every line made printable and its line breaks ("\\n" only) kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    """Log lines whose messages (names included) reach the terminal as text; tracebacks keep their lines."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))
