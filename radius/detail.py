"""Reading FreeRADIUS ``detail`` files. Pure parsing, no database.

A detail file is a sequence of records, each a header line (the time, ``header = "%t"``)
followed by tab-indented ``Attribute = value`` lines and ended by a blank line. FreeRADIUS
appends whole records under a lock, but a reader can still see the tail of one being written,
so :func:`complete_records` only hands out records whose closing blank line is on disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "'": "'"}
_OCTAL_RE = re.compile(r"[0-7]{3}")


@dataclass(frozen=True)
class DetailRecord:
    """One record: its attributes (first value of each) and where it starts and ends in the
    file."""

    attrs: dict[str, str]
    end_offset: int
    offset: int = 0


def unquote(value: str) -> str:
    """A detail-file value: quoted strings are unescaped (``\\"``, ``\\\\``, ``\\n``, octal);
    bytes that are not UTF-8 come back as lone surrogates (``\\udcff`` for 0xFF)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    body = value[1:-1]
    if "\\" not in body:
        return body
    out, i = bytearray(), 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if _OCTAL_RE.match(body, i + 1):
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out += _ESCAPES.get(nxt, "\\" + nxt).encode("utf-8")
            i += 2
            continue
        out += c.encode("utf-8")
        i += 1
    # Bytes that are not UTF-8 are kept as lone surrogates (surrogateescape), so the value is
    # still exactly what the NAS sent: radius.bounds refuses them in keys and replaces them
    # in display text.
    return out.decode("utf-8", errors="surrogateescape")


def parse_record(text: str) -> dict[str, str]:
    """The attributes of one record's text (header line included or not)."""
    attrs: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("\t"):
            continue
        name, sep, value = line.strip().partition(" = ")
        if not sep or name in attrs:  # the first value of each
            continue
        # unquote's fast paths inline: this runs for every attribute of every record
        if value[:1] != '"' or len(value) < 2 or value[-1] != '"':
            attrs[name] = value
        elif "\\" in value:
            attrs[name] = unquote(value)
        else:
            attrs[name] = value[1:-1]
    return attrs


def complete_records(data: bytes, base_offset: int = 0) -> Iterator[DetailRecord]:
    """Every complete record in *data* (read from *base_offset* of a file)."""
    pos = 0
    while True:
        end = data.find(b"\n\n", pos)
        if end < 0:
            return
        chunk, start = data[pos:end], pos
        pos = end + 2
        if chunk.strip():
            yield DetailRecord(parse_record(chunk.decode("utf-8", errors="replace")),
                               base_offset + pos, base_offset + start)
