"""Bytes for the Redis stream: ``FrameRequest`` and ``FrameAnalysis`` without pickle.

Owns: one wire format for the records that travel between the server and
recognition workers on other machines. A Redis server is shared
infrastructure; if it is ever compromised, what it hands a worker must be
data, never code, so ``pickle`` (which runs whatever a crafted payload names)
is out. Decoding builds only the dataclasses in ``allowed_dataclasses()`` and
the plain values below; anything else is a ``CodecError`` (a ``ValueError``).

The format is generic over dataclass fields, so a field added to
``FrameRequest`` or ``FrameAnalysis`` later (a float, an optional tuple of
boxes, a small dict) crosses the stream without touching this module, as long
as its value is one of:

* ``None``, ``bool``, ``int``, ``float`` (NaN and infinities included), ``str``
  (numpy scalars are sent as the matching Python scalar);
* a dataclass that appears in the type hints of the records' fields
  (``Box``, ``Face``, ``Pose``, ...), field by field;
* a numpy array of a plain numeric dtype (``uint8`` frames, ``float64``
  encodings), as its shape, dtype and raw bytes;
* tuples, lists and ``str``-keyed dicts of the above.

Which dataclasses may be built is worked out from the annotations of
``FrameRequest`` and ``FrameAnalysis`` (recursively), never from the input:
the wire names a type, and only a name in that allowlist is built. So a new
field typed ``Pose | None`` allows ``Pose`` by being declared. Each decoded
field is also checked against its annotation (a ``frame`` must be a ``uint8``
array, a ``side`` one of its literals), so a bad record fails here, clearly,
and not deep inside dlib.

Layout: ``MAGIC``, a big-endian ``uint32`` header length, a UTF-8 JSON
header ``{"parts": [n0, n1, ...], "v": <value>}``, then the arrays' bytes
back to back. JSON carries everything but arrays (small, readable in
``redis-cli``); arrays go raw, since a 640×480 frame as JSON or base64 would
cost a copy and a third more bytes for nothing. In the JSON, lists stay JSON
arrays and every other non-scalar is an object tagged by its ``"$"`` key.

Must never: import pickle or marshal, build a type outside the allowlist,
import anything the input names, or let a malformed input escape as anything
but ``CodecError``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import struct
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from recognition.analysis import FrameAnalysis, FrameRequest

__all__ = [
    "ROOTS",
    "CodecError",
    "allowed_dataclasses",
    "decode",
    "decode_analysis",
    "decode_request",
    "encode",
]

MAGIC = b"VGR1"
_HEADER_LEN = struct.Struct(">I")
#: A header is a few hundred bytes (the arrays are outside it); anything near
#: this is not one of ours.
MAX_HEADER_BYTES = 1 << 20
#: Nesting beyond this is garbage or an attack on the recursion limit.
MAX_DEPTH = 32
MAX_NDIM = 8

#: The records sent on the stream; every dataclass reachable from their
#: field annotations may cross it too.
ROOTS: tuple[type[Any], ...] = (FrameRequest, FrameAnalysis)


@functools.cache
def allowed_dataclasses() -> dict[str, type[Any]]:
    """The dataclasses that may be built from the wire, by the name used on it:
    the roots and every dataclass in their field annotations, recursively.
    Computed on first use (nothing runs at import time) and cached."""
    found: dict[str, type[Any]] = {}

    def visit(hint: Any) -> None:
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            known = found.get(hint.__name__)
            if known is hint:
                return
            if known is not None:
                raise TypeError(
                    f"two dataclasses named {hint.__name__} in the records "
                    f"({known.__module__}, {hint.__module__}): the wire names types by name"
                )
            found[hint.__name__] = hint
            for field_hint in _hints(hint).values():
                visit(field_hint)
        for arg in typing.get_args(hint):
            visit(arg)

    for root in ROOTS:
        visit(root)
    return found


def _wire_name(value: Any) -> str | None:
    name = type(value).__name__
    return name if allowed_dataclasses().get(name) is type(value) else None


#: Array dtypes allowed on the wire, always little-endian (never ``object``:
#: that is where pickle hides inside numpy).
_DTYPES = frozenset(
    np.dtype(t).newbyteorder("<").str
    for t in (
        np.bool_,
        np.uint8,
        np.int8,
        np.uint16,
        np.int16,
        np.uint32,
        np.int32,
        np.uint64,
        np.int64,
        np.float32,
        np.float64,
    )
)

T = TypeVar("T")


class CodecError(ValueError):
    """The bytes are not a record this codec wrote (garbage, truncated, a
    different version, or a type outside the allowlist)."""


# --- encoding ------------------------------------------------------------------------------


def encode(record: Any) -> bytes:
    """The wire bytes of a record (or any dataclass in ``allowed_dataclasses()``).

    Raises ``TypeError`` for a value the format cannot carry (a programming
    error on the sending side, named by its path, e.g. ``FrameRequest.extra[2]``)."""
    if _wire_name(record) is None:
        raise TypeError(f"cannot encode a {type(record).__name__}: not a record or part of one")
    parts: list[bytes] = []
    value = _encode_value(record, parts, type(record).__name__)
    header = json.dumps(
        {"parts": [len(p) for p in parts], "v": value},
        # ASCII escapes keep any str (even a lone surrogate) encodable as UTF-8.
        ensure_ascii=True,
        separators=(",", ":"),
        allow_nan=True,
    ).encode("utf-8")
    return b"".join([MAGIC, _HEADER_LEN.pack(len(header)), header, *parts])


def _encode_value(value: Any, parts: list[bytes], path: str) -> Any:
    # bool before int (bool is an int); numpy scalars before float (np.float64 is one).
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
        raise TypeError(f"{path}: cannot encode numpy scalar of dtype {value.dtype}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.ndarray):
        return _encode_array(value, parts, path)
    if (name := _wire_name(value)) is not None:
        return {
            "$": "dc",
            "type": name,
            "v": {
                f.name: _encode_value(getattr(value, f.name), parts, f"{path}.{f.name}")
                for f in dataclasses.fields(value)
                if f.init
            },
        }
    if isinstance(value, tuple):
        return {
            "$": "tuple",
            "v": [_encode_value(v, parts, f"{path}[{i}]") for i, v in enumerate(value)],
        }
    if isinstance(value, list):
        return [_encode_value(v, parts, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: dict keys must be str, got {type(key).__name__}")
            out[key] = _encode_value(item, parts, f"{path}[{key!r}]")
        return {"$": "dict", "v": out}
    raise TypeError(f"{path}: cannot encode a {type(value).__name__}")


def _encode_array(array: np.ndarray[Any, Any], parts: list[bytes], path: str) -> Any:
    wire = array.dtype.newbyteorder("<").str
    if wire not in _DTYPES:
        raise TypeError(f"{path}: cannot encode an array of dtype {array.dtype}")
    if array.ndim > MAX_NDIM:
        raise TypeError(f"{path}: cannot encode an array of {array.ndim} dimensions")
    # tobytes() is C order whatever the array's layout; astype is a no-op when
    # the byte order already matches (it does on every machine we run on).
    parts.append(array.astype(np.dtype(wire), copy=False).tobytes(order="C"))
    return {"$": "nd", "dtype": wire, "shape": list(array.shape), "part": len(parts) - 1}


# --- decoding ------------------------------------------------------------------------------


def decode(data: bytes | bytearray | memoryview, expected: type[T]) -> T:
    """The record in ``data``, which must be an ``expected`` (a type in
    ``allowed_dataclasses()``). Raises ``CodecError`` and nothing else on bad input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    try:
        value = _decode(memoryview(data).cast("B"))
    except CodecError:
        raise
    except RecursionError:
        raise CodecError("the record is nested too deeply") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError, ValueError) as exc:
        # A shape the explicit checks below did not foresee: still bad input.
        raise CodecError(f"malformed record: {type(exc).__name__}: {exc}") from None
    if type(value) is not expected:
        raise CodecError(f"expected a {expected.__name__}, got a {type(value).__name__}")
    return value


def decode_request(data: bytes | bytearray | memoryview) -> FrameRequest:
    return decode(data, FrameRequest)


def decode_analysis(data: bytes | bytearray | memoryview) -> FrameAnalysis:
    return decode(data, FrameAnalysis)


def _decode(data: memoryview) -> Any:
    start = len(MAGIC) + _HEADER_LEN.size
    if len(data) < start or bytes(data[: len(MAGIC)]) != MAGIC:
        raise CodecError("not a VisitGate recognition record (bad magic)")
    (header_len,) = _HEADER_LEN.unpack(data[len(MAGIC) : start])
    if header_len > MAX_HEADER_BYTES or start + header_len > len(data):
        raise CodecError(f"bad header length {header_len} for a record of {len(data)} bytes")
    try:
        header = json.loads(bytes(data[start : start + header_len]).decode("utf-8"))
    except UnicodeDecodeError:
        raise CodecError("the header is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise CodecError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"parts", "v"}:
        raise CodecError("the header must be an object with exactly 'parts' and 'v'")
    lengths = header["parts"]
    if not isinstance(lengths, list) or not all(_is_count(n) for n in lengths):
        raise CodecError("'parts' must be a list of byte counts")
    offset = start + header_len
    if offset + sum(lengths) != len(data):
        raise CodecError(
            f"the parts add up to {sum(lengths)} bytes but {len(data) - offset} follow the header"
        )
    parts = []
    for n in lengths:
        parts.append(data[offset : offset + n])
        offset += n
    return _decode_value(header["v"], parts, 0)


def _is_count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _decode_value(value: Any, parts: list[memoryview], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError(f"the record is nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode_value(v, parts, depth + 1) for v in value]
    if not isinstance(value, dict):  # pragma: no cover - json.loads yields nothing else
        raise CodecError(f"unexpected JSON value {type(value).__name__}")
    tag = value.get("$")
    if tag == "tuple" and set(value) == {"$", "v"} and isinstance(value["v"], list):
        return tuple(_decode_value(v, parts, depth + 1) for v in value["v"])
    if tag == "dict" and set(value) == {"$", "v"} and isinstance(value["v"], dict):
        return {k: _decode_value(v, parts, depth + 1) for k, v in value["v"].items()}
    if tag == "dc" and set(value) == {"$", "type", "v"} and isinstance(value["v"], dict):
        return _decode_dataclass(value["type"], value["v"], parts, depth)
    if tag == "nd" and set(value) == {"$", "dtype", "shape", "part"}:
        return _decode_array(value, parts)
    raise CodecError(f"unknown or malformed tagged value {str(value)[:80]!r}")


def _decode_dataclass(
    name: Any, fields: Mapping[str, Any], parts: list[memoryview], depth: int
) -> Any:
    cls = allowed_dataclasses().get(name) if isinstance(name, str) else None
    if cls is None:
        raise CodecError(f"{name!r} is not a type this codec may build")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(fields) - known
    if unknown:
        # Strict on purpose: a server newer than its workers must hear about
        # it (an error reply), not have a field silently ignored.
        raise CodecError(f"{name} has no field(s) {sorted(unknown)} (server and worker differ?)")
    kwargs = {k: _decode_value(v, parts, depth + 1) for k, v in fields.items()}
    hints = _hints(cls)
    for key, value in kwargs.items():
        if not _conforms(value, hints[key]):
            raise CodecError(
                f"{name}.{key}: expected {_describe(hints[key])}, got {_describe_value(value)}"
            )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise CodecError(f"cannot build {name}: {exc}") from None


def _decode_array(spec: Mapping[str, Any], parts: list[memoryview]) -> np.ndarray[Any, Any]:
    dtype_text, shape, index = spec["dtype"], spec["shape"], spec["part"]
    if not isinstance(dtype_text, str) or dtype_text not in _DTYPES:
        raise CodecError(f"array dtype {dtype_text!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_count(n) for n in shape):
        raise CodecError(f"bad array shape {shape!r}")
    if not _is_count(index) or index >= len(parts):
        raise CodecError(f"array part {index!r} does not exist")
    dtype = np.dtype(dtype_text)
    raw = parts[index]
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise CodecError(
            f"array of shape {shape} and dtype {dtype_text} needs "
            f"{math.prod(shape) * dtype.itemsize} bytes, the part has {len(raw)}"
        )
    # A copy: the array owns writable memory, not a view into the message.
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# --- the values must be what the fields declare --------------------------------------------------


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """``get_type_hints`` evaluates every annotation string: once per class is enough."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded value fits its field's annotation, so that what
    arrives is what the receiver's code was written for (a ``frame`` that is a
    ``uint8`` array, a ``seq`` that is an int), not whatever Redis held.
    A hint this does not understand is left to the constructor."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if hint is float:  # an int is a float to a type checker too; a bool is not
        return isinstance(value, float | int) and not isinstance(value, bool)
    if hint in (bool, int, str):
        return isinstance(value, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return any(_conforms(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return not args or (
            len(value) == len(args)
            and all(_conforms(v, a) for v, a in zip(value, args, strict=True))
        )
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value if args)
    if origin is dict:
        return isinstance(value, dict) and all(
            _conforms(v, args[1]) for v in value.values() if len(args) == 2
        )
    if origin is np.ndarray:
        if not isinstance(value, np.ndarray):
            return False
        scalar = typing.get_args(args[1]) if len(args) == 2 else ()
        if scalar and isinstance(scalar[0], type) and issubclass(scalar[0], np.generic):
            return bool(value.dtype == np.dtype(scalar[0]))
        return True
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    if typing.get_origin(hint) is np.ndarray:
        scalar = typing.get_args(typing.get_args(hint)[-1])
        return f"an array of {np.dtype(scalar[0])}" if scalar else "an array"
    return str(hint).replace("typing.", "")


def _describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    return f"{type(value).__name__} {str(value)[:40]!r}"
