"""The stream codec: every record round-trips field for field, whatever fields the records
grow, and bytes that are not a record are a ValueError, never anything else."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import types
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recognition import codec
from recognition.analysis import FrameAnalysis, FrameRequest
from recognition.codec import CodecError
from recognition.models import Box
from recognition.verify import Face

# --- strategies built from the records' own annotations ----------------------------------------
# So a field added to FrameRequest or FrameAnalysis is fuzzed here without touching this file.


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return st.none()
    if hint in (bool, int, str):
        return st.from_type(hint)
    if hint is float:
        return st.floats(allow_nan=True, allow_infinity=True)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=5), strategy_for(args[1]), max_size=3)
    if origin is np.ndarray:
        (dtype,) = typing.get_args(args[1])
        if dtype is np.uint8:  # an RGB frame
            shape = st.tuples(st.integers(0, 6), st.integers(0, 6), st.just(3))
        else:  # an encoding or another vector
            shape = st.sampled_from([(0,), (3,), (128,)])
        return hnp.arrays(np.dtype(dtype), shape)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return st.builds(
            hint,
            **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(hint) if f.init},
        )
    raise TypeError(f"no strategy for {hint!r}: teach strategy_for (and the codec?) about it")


def assert_same(a: Any, b: Any, path: str = "record") -> None:
    """Field-for-field equality (the records are eq=False), NaN equal to NaN, -0.0 to -0.0."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
        assert b.flags.writeable and b.flags.owndata, f"{path}: decoded arrays own their memory"
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        ), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(strategy_for(FrameRequest))
def test_every_frame_request_round_trips(request: FrameRequest) -> None:
    assert_same(request, codec.decode_request(codec.encode(request)))


@FAST
@given(strategy_for(FrameAnalysis))
def test_every_frame_analysis_round_trips(analysis: FrameAnalysis) -> None:
    assert_same(analysis, codec.decode_analysis(codec.encode(analysis)))


# --- fields added later cross without touching the codec ---------------------------------------


@dataclass(frozen=True, slots=True)
class Landmark:
    point: tuple[float, float]
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class LaterRequest:
    """FrameRequest as it might look after a few more features."""

    visit_id: str
    frame: npt.NDArray[np.uint8]
    yaw: float = 0.5
    landmark: Landmark | None = None
    landmarks: tuple[Landmark, ...] = ()
    track: tuple[Box, ...] | None = None
    faces: tuple[Face, ...] = ()
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    points: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    weights: npt.NDArray[np.float32] | None = None


@contextmanager
def later_records() -> Iterator[None]:
    """LaterRequest as a root: its annotations alone decide what may cross."""
    original = codec.ROOTS
    codec.ROOTS = (*original, LaterRequest)
    codec.allowed_dataclasses.cache_clear()
    try:
        yield
    finally:
        codec.ROOTS = original
        codec.allowed_dataclasses.cache_clear()


@FAST
@given(record=strategy_for(LaterRequest))
def test_fields_added_later_round_trip_without_touching_the_codec(record: LaterRequest) -> None:
    with later_records():
        assert {"Landmark", "LaterRequest", "Box", "Face"} <= set(codec.allowed_dataclasses())
        assert_same(record, codec.decode(codec.encode(record), LaterRequest))


def test_a_type_only_reachable_from_a_new_field_is_not_allowed_before_it_is_declared() -> None:
    with pytest.raises(TypeError, match="Landmark"):
        codec.encode(Landmark((1.0, 2.0), "nose"))


# --- what the wire looks like --------------------------------------------------------------------


def test_numpy_scalars_cross_as_python_scalars() -> None:
    analysis = FrameAnalysis(
        **{
            **_analysis_fields(),
            "pid": np.int64(7),
            "cpu_ms": np.float32(1.5),
            "card_method": "none",
        }
    )
    back = codec.decode_analysis(codec.encode(analysis))
    assert (type(back.pid), back.pid, type(back.cpu_ms), back.cpu_ms) == (int, 7, float, 1.5)


def test_the_frame_crosses_as_raw_bytes_beside_a_readable_header() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    data = codec.encode(FrameRequest("v1", "relative", 3, frame, "card", card_hint=Box(1, 2, 3, 4)))
    (header_len,) = struct.unpack(">I", data[4:8])
    header = json.loads(data[8 : 8 + header_len])
    assert header["parts"] == [frame.nbytes]
    assert len(data) == 8 + header_len + frame.nbytes and header_len < 1000
    assert header["v"]["v"]["card_hint"] == {
        "$": "dc",
        "type": "Box",
        "v": {"left": 1, "top": 2, "right": 3, "bottom": 4},
    }


def test_a_value_the_format_cannot_carry_is_a_type_error_naming_where() -> None:
    request = FrameRequest("v1", "relative", 1, np.zeros((2, 2, 3), np.uint8), skip={1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"FrameRequest\.skip"):
        codec.encode(request)
    objects = np.array([object()], dtype=object)
    with pytest.raises(TypeError, match="dtype object"):
        codec.encode(dataclasses.replace(request, skip=(), frame=objects))


# --- bad input is a ValueError, never anything else ----------------------------------------------


def minimal(hint: Any) -> Any:
    """The plainest value of a hint (first literal, None when optional, empty, zero)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in args else minimal(args[0])
    if origin is np.ndarray:
        return np.zeros((1, 1, 3), dtype=np.dtype(typing.get_args(args[1])[0]))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: minimal(hints[f.name]) for f in dataclasses.fields(hint) if f.init})
    return (origin or hint)()


def _analysis_fields() -> dict[str, Any]:
    """Every FrameAnalysis field, with plain values (whatever fields it has by now)."""
    example = minimal(FrameAnalysis)
    return {f.name: getattr(example, f.name) for f in dataclasses.fields(FrameAnalysis)}


def _record(value: Any, parts: Sequence[bytes] = ()) -> bytes:
    header = json.dumps({"parts": [len(p) for p in parts], "v": value}).encode()
    return b"".join([codec.MAGIC, struct.pack(">I", len(header)), header, *parts])


def _request(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "visit_id": "v1",
        "side": "relative",
        "seq": 1,
        "frame": {"$": "nd", "dtype": "|u1", "shape": [1, 1, 3], "part": 0},
    }
    return {"$": "dc", "type": "FrameRequest", "v": {**base, **fields}}


def test_a_well_formed_hand_made_record_decodes() -> None:
    request = codec.decode_request(_record(_request(), [b"\x01\x02\x03"]))
    assert request.frame.tolist() == [[[1, 2, 3]]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad magic"),
        (b"\x80\x04\x95", "bad magic"),  # a pickle
        (codec.MAGIC + b"\xff\xff\xff\xff{}", "header length"),
        (codec.MAGIC + b"\x00\x00\x00\x02\xff\xfe", "not UTF-8"),
        (codec.MAGIC + b"\x00\x00\x00\x01{", "not JSON"),
        (codec.MAGIC + b"\x00\x00\x00\x06[1, 2]", "exactly 'parts' and 'v'"),
        (_record(_request(), [b"\x01\x02"]), "needs 3 bytes"),
        (_record(_request(), [b"\x01\x02\x03"]) + b"more", "parts add up"),
        (_record(_request(extra=1), [b"\x01\x02\x03"]), "no field"),
        (_record(_request(frame=None)), r"FrameRequest\.frame: expected an array of uint8, got NoneType"),
        (_record(_request(side="visitor"), [b"\x01\x02\x03"]), r"FrameRequest\.side: expected Literal\['relative', 'kiosk'\]"),
        (_record(_request(seq="1"), [b"\x01\x02\x03"]), r"FrameRequest\.seq: expected int, got str"),
        (_record(_request(skip=[]), [b"\x01\x02\x03"]), r"FrameRequest\.skip: expected tuple"),
        (_record(_request(frame={"$": "nd", "dtype": "<f8", "shape": [1], "part": 0}), [b"\x00" * 8]), "FrameRequest.frame: expected an array of uint8, got an array of float64"),
        (_record({"$": "dc", "type": "FrameRequest", "v": {"visit_id": "v"}}), "cannot build"),
        (_record({"$": "dc", "type": "Path", "v": {}}), "'Path' is not a type"),
        (_record({"$": "dc", "type": "os.system", "v": {}}), "is not a type"),
        (_record({"$": "dc", "type": ["Box"], "v": {}}), "is not a type"),
        (_record({"$": "pickle", "v": "gASV"}), "unknown or malformed"),
        (_record({"$": "tuple", "v": 3}), "unknown or malformed"),
        (_record({"$": "nd", "dtype": "|O", "shape": [1], "part": 0}, [b"x" * 8]), "not allowed"),
        (_record({"$": "nd", "dtype": "|u1", "shape": [-1], "part": 0}, [b"x"]), "bad array shape"),
        (_record({"$": "nd", "dtype": "|u1", "shape": [1], "part": 5}, [b"x"]), "does not exist"),
        (_record({"$": "nd", "dtype": "|u1", "shape": [1], "part": True}, [b"x"]), "does not exist"),
        (_record({"$": "nd", "dtype": "<f8", "shape": [10**9, 10**9], "part": 0}, [b"x"]), "needs"),
        (_record({"$": "dc", "type": "Box", "v": {"left": 1, "top": 1, "right": 2, "bottom": 2}}), "expected a FrameRequest"),
        (_record([[[]]] * 2), "expected a FrameRequest"),
        (_record("[" * 50 + "]" * 50), "expected a FrameRequest"),
        (codec.MAGIC + struct.pack(">I", 200_002) + b"[" * 100_001 + b"]" * 100_001, "too deeply|not JSON"),
    ],
)  # fmt: skip
def test_bad_input_is_a_codec_error_that_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message) as caught:
        codec.decode_request(data)
    assert isinstance(caught.value, ValueError)


def test_nesting_deeper_than_any_record_is_refused() -> None:
    nested: Any = {"$": "tuple", "v": []}
    for _ in range(codec.MAX_DEPTH + 1):
        nested = {"$": "tuple", "v": [nested]}
    with pytest.raises(CodecError, match="nested deeper"):
        codec.decode_request(_record(_request(skip=nested), [b"\x01\x02\x03"]))


def test_a_record_of_the_wrong_kind_is_refused() -> None:
    analysis = FrameAnalysis(**_analysis_fields())
    with pytest.raises(CodecError, match="expected a FrameRequest, got a FrameAnalysis"):
        codec.decode_request(codec.encode(analysis))


def test_text_is_not_bytes() -> None:
    with pytest.raises(CodecError, match="expected bytes"):
        codec.decode_request("VGR1")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode_request(codec.MAGIC + data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["$", "v", "type", "dtype", "shape", "part"]), inner)
    | st.fixed_dictionaries({"$": st.sampled_from(["dc", "nd", "tuple", "dict"])}, optional={"v": inner, "type": st.sampled_from(["Box", "Face", "FrameRequest"]), "dtype": st.sampled_from(["|u1", "<f8", "|O"]), "shape": inner, "part": inner}),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(value=JSON, parts=st.lists(st.binary(max_size=16), max_size=2))
def test_any_json_header_decodes_or_is_a_codec_error(value: Any, parts: list[bytes]) -> None:
    try:
        codec.decode_request(_record(value, parts))
    except CodecError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_records_decode_or_are_a_codec_error(data: st.DataObject) -> None:
    original = bytearray(codec.encode(data.draw(strategy_for(FrameRequest))))
    for _ in range(data.draw(st.integers(1, 4))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    try:
        codec.decode_request(bytes(original[:cut]))
    except CodecError:
        pass
