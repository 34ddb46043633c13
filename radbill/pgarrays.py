"""Whole columns as PostgreSQL binary arrays, built a column at a time.

The ingester sends each batch's columns as arrays (``unnest(%b::bigint[], ..)``, one
parameter per column, fixed statement text). psycopg builds a binary array element by
element in Python (a dumper call, a length packed and two appends per value): for the
accounting ingest that was about a fifth of its Python CPU (issue 14, cProfile of
``bench/accounting_ingest.py``). :func:`column` builds the same bytes with one
:class:`struct.Struct` call per value in a C-level ``map`` (or a list comprehension where
there are NULLs) and hands psycopg the finished array.

It is an optimisation only: a value it does not expect (an integer out of the type's range,
text that does not encode, a timestamp without a time zone) makes it return the plain list,
so psycopg adapts it and the database refuses it exactly as before (the ingester's
isolation sees the same ``DataError``).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

import psycopg
from psycopg.adapt import Dumper, PyFormat, Transformer
from psycopg.pq import Format

_NULL = b"\xff\xff\xff\xff"
_HEAD = struct.Struct(">iiiii").pack  # dimensions, has nulls, element oid, length, lower bound
_EMPTY = struct.Struct(">iii").pack
_LEN = struct.Struct(">i").pack
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # PostgreSQL's, in microseconds
_EPOCH_DAY = dt.date(2000, 1, 1)


class BinaryArray:
    """A one-dimensional PostgreSQL array, already in the binary wire format (a subclass
    per element type says which array type it is)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _array_type(name: str, array_oid: int) -> type[BinaryArray]:
    """A :class:`BinaryArray` subclass for one array type, with its dumper registered."""
    cls = type(f"BinaryArray_{name}", (BinaryArray,), {"__slots__": ()})

    class _Dumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: Any) -> bytes:
            return cast(bytes, obj.data)

    psycopg.adapters.register_dumper(cls, _Dumper)
    _REGISTERED.append((cls, _Dumper))
    return cls


_REGISTERED: list[tuple[type[BinaryArray], type[Dumper]]] = []


def ready(conn: psycopg.Connection[Any]) -> None:
    """Make *conn* know this module's array types. They are registered with psycopg's
    global adapters on import, but a connection copies those as soon as something (the
    SQLAlchemy dialect, for one) registers an adapter of its own on it: a connection opened
    before this module was imported may not know them."""
    adapters = conn.adapters
    try:
        adapters.get_dumper(_REGISTERED[-1][0], PyFormat.BINARY)
    except psycopg.ProgrammingError:
        for cls, dumper in _REGISTERED:
            adapters.register_dumper(cls, dumper)


_Q = struct.Struct(">q").pack
_I = _LEN
_L8 = _LEN(8)  # the length word of every 8-byte element
_L4 = _LEN(4)
_dumpers = Transformer()  # psycopg's own (C) element dumpers, for timestamps and dates
_TIMESTAMPTZ = _dumpers.get_dumper(_EPOCH, PyFormat.BINARY).dump
_DATE = _dumpers.get_dumper(_EPOCH_DAY, PyFormat.BINARY).dump


def _fixed(values: Sequence[Any], dump: Callable[[Any], Any], length: bytes) -> bytes:
    """The elements of a fixed-size type: without NULLs one C-level join."""
    if None in values:
        return b"".join([_NULL if v is None else length + dump(v) for v in values])
    return length + length.join(map(dump, values))


def _int8(values: Sequence[Any]) -> bytes:
    return _fixed(values, _Q, _L8)


def _int4(values: Sequence[Any]) -> bytes:
    return _fixed(values, _I, _L4)


def _timestamptz(values: Sequence[Any]) -> bytes:
    return _fixed(values, _TIMESTAMPTZ, _L8)  # a naive one: TypeError, psycopg's own way


def _date(values: Sequence[Any]) -> bytes:
    return _fixed(values, _DATE, _L4)


def _text(values: Sequence[Any]) -> bytes:
    if None in values:
        return b"".join([_NULL if v is None else _LEN(len(b := v.encode())) + b
                         for v in values])
    return b"".join([_I(len(b)) + b for b in map(str.encode, values)])


# by the SQL type of the elements: (element oid, the array's class, builder)
_TYPES: dict[str, tuple[int, type[BinaryArray], Callable[[Sequence[Any]], bytes]]] = {
    name: (elem, _array_type(name, array), build) for name, elem, array, build in (
        ("bigint", 20, 1016, _int8),
        ("integer", 23, 1007, _int4),
        ("varchar", 1043, 1015, _text),
        ("timestamptz", 1184, 1185, _timestamptz),
        ("date", 1082, 1182, _date))}


def column(values: Sequence[Any], sql_type: str) -> BinaryArray | list[Any]:
    """*values* as an array of *sql_type* (``bigint``, ``integer``, ``varchar``,
    ``timestamptz``, ``date``) for a ``%b::<sql_type>[]`` parameter; the plain list when a
    value is not one this module builds (psycopg then adapts it as before)."""
    elem, array, build = _TYPES[sql_type]
    if not values:
        return array(_EMPTY(0, 0, elem))
    try:
        body = build(values)
    except (struct.error, TypeError, ValueError, AttributeError, OverflowError):
        return list(values)
    return array(_HEAD(1, None in values, elem, len(values), 1) + body)


# The array types a list may be dumped as, by array oid: those column() builds, and the
# others made here, on import, so that ready() gives a connection every one of them.
_BY_OID: dict[int, type[BinaryArray]] = {int(d.oid): cls for cls, d in _REGISTERED}
for _name, _oid in (("bool", 1000), ("int2", 1005), ("text", 1009), ("float8", 1022),
                    ("numeric", 1231), ("json", 199), ("jsonb", 3807), ("uuid", 2951),
                    ("timestamp", 1115)):
    _BY_OID[_oid] = _array_type(f"dumped_{_name}", _oid)


def predumped(values: Sequence[Any]) -> BinaryArray | list[Any]:
    """*values* dumped now, exactly as psycopg would dump the list as a binary parameter
    (``%b``) when the statement is executed: its own list dumper, chosen by the values. The
    billing run formats a batch's parameters in the thread that plans it and sends them from
    the thread that writes, which then does next to no Python (and so rarely waits for the
    GIL). The plain list (dumped when the statement runs) for an array type not listed
    above; raises what psycopg's dumper raises."""
    dumper = _dumpers.get_dumper(values, PyFormat.BINARY)
    array = _BY_OID.get(dumper.oid)
    if array is None:
        return list(values)
    data = dumper.dump(values)
    return array(bytes(data) if data is not None else b"")
