"""safetensors checkpoints: round trips, an independent pure-Python reader and
writer (struct + json) in both directions, the `safetensors` package when it is
installed, hostile files, and atomic saves."""
from __future__ import annotations

import errno
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

from cpuformer import _core
from cpuformer.io import load_file, load_metadata, save_file

# ---------------------------------------------------------------------------
# An independent safetensors implementation: struct + json + NumPy only.
# ---------------------------------------------------------------------------

NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "u1",
}
ITEM_SIZE = {"BF16": 2, **{k: np.dtype(v).itemsize for k, v in NUMPY_DTYPES.items()}}


def py_read(path):
    """Parse a safetensors file with struct + json. Returns (header dict,
    {name: float64 array}, metadata)."""
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = data[b:e]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, NUMPY_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return header, out, meta


def py_write(path, entries, metadata=None, pad=0, order=None):
    """Write a safetensors file with struct + json.

    entries: list of (name, dtype, shape, raw bytes), stored in that order in
    the data buffer. `order` (a permutation) lists the header entries in a
    different order; `pad` adds trailing spaces to the header."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    listed = [entries[i] for i in order] if order is not None else entries
    offsets = {}
    for name, _, _, raw in entries:
        offsets[name] = [offset, offset + len(raw)]
        offset += len(raw)
        data += raw
    for name, dtype, shape, _ in listed:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": offsets[name]}
    text = json.dumps(header, ensure_ascii=False).encode("utf-8") + b" " * pad
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)


def raw_file(header, data=b""):
    """Bytes of a file from a header (dict, str or bytes) and a data buffer."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode("utf-8")
    return struct.pack("<Q", len(header)) + header + data


def bits(a):
    """Exact bit patterns, so NaN, inf and -0.0 compare exactly."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def sample_tensors(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    x[0, 0], x[0, 1], x[0, 2], x[0, 3] = np.nan, np.inf, -np.inf, -0.0
    return {
        "blocks.0.attn.qkv.weight": x,
        "scalar": np.float32(3.5),
        "empty": np.zeros((0, 4), np.float32),
        "empty_middle": np.zeros((2, 0, 3), np.float32),
        "odd": rng.standard_normal((1, 7, 1, 3)).astype(np.float32),
        "vector": rng.standard_normal(13).astype(np.float32),
        "Gewichte.übergroß": np.arange(5, dtype=np.float32),
        "权重 🚀": np.ones((2, 2), np.float32),
        "with \"quotes\" \\ and\nnewline": np.full(3, 2.0, np.float32),
    }


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_round_trip_preserves_names_order_shapes_bits_and_metadata(tmp_path, rng):
    tensors = sample_tensors(rng)
    meta = {"format": "np", "config": json.dumps({"n_layer": 2, "name": "tiny"}), "ünïcode": "値 ✓", "": ""}
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata=meta)

    loaded = load_file(path)
    assert list(loaded) == list(tensors)
    for name, value in tensors.items():
        got = loaded[name]
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
        assert got.shape == np.shape(value), name
        assert np.array_equal(bits(got), bits(value)), name
    assert load_metadata(path) == meta
    tensors2, meta2 = _core.load_safetensors(str(path))
    assert meta2 == meta and list(tensors2) == list(tensors)


def test_any_real_dtype_is_stored_as_float32(tmp_path):
    path = tmp_path / "m.safetensors"
    src = {"i": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.array([True, False]),
           "d": np.array([0.1, 1e-50]), "t": np.arange(12, dtype=np.float32).reshape(3, 4).T}
    save_file(src, path)
    header, arrays, _ = py_read(path)
    assert {info["dtype"] for info in header.values()} == {"F32"}
    for name, value in src.items():
        assert np.array_equal(arrays[name], np.asarray(value, np.float32)), name
    assert np.array_equal(load_file(path)["t"], src["t"])  # non-contiguous input stored row-major


def test_empty_checkpoint_and_no_metadata(tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file({}, path)
    assert load_file(path) == {} and load_metadata(path) == {}
    save_file({"x": np.ones(2)}, path, metadata=None)
    assert load_metadata(path) == {}
    assert b"__metadata__" not in path.read_bytes()


def test_paths_may_be_str_bytes_or_pathlike(tmp_path):
    class MyPath:
        def __init__(self, p):
            self.p = p

        def __fspath__(self):
            return self.p

    x = {"x": np.arange(3, dtype=np.float32)}
    for p in [str(tmp_path / "a.safetensors"), tmp_path / "b.safetensors",
              os.fsencode(str(tmp_path / "c.safetensors")), MyPath(str(tmp_path / "d.safetensors"))]:
        save_file(x, p)
        assert np.array_equal(load_file(p)["x"], x["x"])
        assert load_metadata(p) == {}
    with pytest.raises(TypeError):
        save_file(x, 123)
    with pytest.raises(TypeError):
        load_file(None)


def test_bad_arguments_raise_before_writing(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(TypeError, match="names must be str"):
        save_file({1: np.ones(2)}, path)
    with pytest.raises(TypeError):
        save_file({"x": np.array(["a", "b"])}, path)
    with pytest.raises(TypeError):
        save_file({"x": np.ones(2, np.complex64)}, path)
    with pytest.raises(TypeError, match="metadata"):
        save_file({"x": np.ones(2)}, path, metadata={"step": 100})
    with pytest.raises(TypeError, match="metadata"):
        save_file({"x": np.ones(2)}, path, metadata=["a"])
    with pytest.raises(TypeError, match="tensors"):
        save_file([np.ones(2)], path)
    with pytest.raises(ValueError, match="empty name"):
        save_file({"": np.ones(2)}, path)
    with pytest.raises(ValueError, match="reserved"):
        save_file({"__metadata__": np.ones(2)}, path)
    with pytest.raises(ValueError, match="UTF-8"):
        save_file({"lone \udc80 surrogate": np.ones(2)}, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Independent implementations, both directions
# ---------------------------------------------------------------------------


def test_our_files_read_by_independent_parser(tmp_path, rng):
    tensors = sample_tensors(rng)
    path = tmp_path / "ours.safetensors"
    save_file(tensors, path, metadata={"k": "v"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "data buffer should start 8-byte aligned"
    header, arrays, meta = py_read(path)
    assert meta == {"k": "v"}
    assert list(header) == list(tensors)
    # Contiguous, in order, covering the whole data buffer (no holes).
    offset = 0
    for name, value in tensors.items():
        info = header[name]
        assert info["dtype"] == "F32" and info["shape"] == list(np.shape(value))
        assert info["data_offsets"] == [offset, offset + 4 * np.size(value)]
        offset += 4 * np.size(value)
        assert np.array_equal(bits(arrays[name]), bits(value)), name
    assert offset == len(raw) - 8 - n


def test_every_dtype_from_independent_writer(tmp_path, rng):
    patterns = np.arange(65536, dtype=np.uint16)  # every 16-bit pattern
    values = {
        "f64": rng.standard_normal((4, 3)) * 1e3,
        "f32": rng.standard_normal((2, 2)).astype(np.float32),
        "i64": np.array([[-(2**40), -1], [0, 2**53]], np.int64),
        "i32": np.array([-(2**31), 2**31 - 1], np.int32),
        "i16": np.array([-32768, 32767], np.int16),
        "i8": np.array([-128, 127, 0], np.int8),
        "u64": np.array([0, 2**64 - 1], np.uint64),
        "u32": np.array([2**32 - 1], np.uint32),
        "u16": np.array([65535], np.uint16),
        "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "bool": np.array([[0, 1], [2, 255]], np.uint8),  # any non-zero byte is True
        "scalar": np.array(7.25, np.float64),
        "empty": np.zeros((3, 0), np.int32),
    }
    dtype_of = {"f64": "F64", "f32": "F32", "i64": "I64", "i32": "I32", "i16": "I16", "i8": "I8", "u64": "U64",
                "u32": "U32", "u16": "U16", "u8": "U8", "bool": "BOOL", "scalar": "F64", "empty": "I32"}
    entries = [("f16", "F16", patterns.shape, patterns.tobytes()), ("bf16", "BF16", [256, 256], patterns.tobytes())]
    entries += [(name, dtype_of[name], v.shape, v.astype(NUMPY_DTYPES[dtype_of[name]]).tobytes())
                for name, v in values.items()]
    path = tmp_path / "theirs.safetensors"
    # Header padded with spaces, entries listed in reverse data order.
    py_write(path, entries, metadata={"source": "py"}, pad=13, order=list(reversed(range(len(entries)))))

    loaded = load_file(path)
    assert list(loaded) == [e[0] for e in reversed(entries)]
    assert load_metadata(path) == {"source": "py"}
    assert all(a.dtype == np.float32 for a in loaded.values())

    f16_expected = patterns.view(np.float16).astype(np.float32)
    # Exact, including subnormals, infinities, signed zeros and NaN payloads.
    assert np.array_equal(bits(loaded["f16"]), bits(f16_expected))
    bf16_expected = (patterns.astype(np.uint32) << 16).view(np.float32).reshape(256, 256)
    assert np.array_equal(bits(loaded["bf16"]), bits(bf16_expected))
    for name, v in values.items():
        expected = (v != 0) if name == "bool" else v
        assert loaded[name].shape == v.shape, name
        assert np.array_equal(loaded[name], np.asarray(expected).astype(np.float32)), name


@pytest.fixture
def safetensors_numpy():
    return pytest.importorskip("safetensors.numpy")


def test_cross_check_with_safetensors_package(tmp_path, rng, safetensors_numpy):
    tensors = {k: np.asarray(v, np.float32) for k, v in sample_tensors(rng).items()}
    ours = tmp_path / "ours.safetensors"
    save_file(tensors, ours, metadata={"a": "b"})
    theirs = safetensors_numpy.load_file(str(ours))
    assert set(theirs) == set(tensors)
    for name, value in tensors.items():
        assert theirs[name].dtype == np.float32
        assert np.array_equal(bits(theirs[name]), bits(value)), name
    from safetensors import safe_open

    with safe_open(str(ours), framework="np") as f:
        assert f.metadata() == {"a": "b"}

    src = {"f16": rng.standard_normal((3, 4)).astype(np.float16), "f64": rng.standard_normal(5),
           "i64": np.arange(-3, 3, dtype=np.int64), "u8": np.arange(7, dtype=np.uint8),
           "bool": np.array([True, False, True]), "i32": np.array([[1, -2]], np.int32),
           "scalar": np.array(1.5, np.float32), "empty": np.zeros((0, 2), np.float32)}
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(src, str(path), metadata={"x": "y"})
    loaded = load_file(path)
    assert set(loaded) == set(src) and load_metadata(path) == {"x": "y"}
    for name, value in src.items():
        assert loaded[name].shape == value.shape
        assert np.array_equal(loaded[name], value.astype(np.float32)), name


# ---------------------------------------------------------------------------
# Hostile files
# ---------------------------------------------------------------------------

GOOD_HEADER = {"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}}
GOOD_DATA = bytes(range(48))


def entry(**fields):
    base = {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


HOSTILE = {
    "empty file": b"",
    "shorter than the length field": b"\x10\x00\x00",
    "header length huge": struct.pack("<Q", 2**64 - 1) + b"{}",
    "header length 2**62": struct.pack("<Q", 2**62) + b"{}" + b" " * 64,
    "header length past end": struct.pack("<Q", 100) + b"{}",
    "empty header": raw_file(b"", GOOD_DATA),
    "bad JSON": raw_file(b'{"w": {"dtype": "F32",', GOOD_DATA),
    "trailing comma": raw_file(b'{"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48],}}', GOOD_DATA),
    "NaN in header": raw_file(b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 48]}}', GOOD_DATA),
    "invalid UTF-8 name": raw_file(b'{"w\xff": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}}',
                                   GOOD_DATA),
    "NUL after header": raw_file(json.dumps(GOOD_HEADER).encode() + b"\x00", GOOD_DATA),
    "deep nesting": raw_file(b"[" * 100000 + b"]" * 100000),
    "header is an array": raw_file("[1, 2, 3]", GOOD_DATA),
    "header is a string": raw_file('"w"', GOOD_DATA),
    "header is a number": raw_file("48", GOOD_DATA),
    "header is null": raw_file("null", GOOD_DATA),
    "header is an array after spaces": raw_file("  \n [" + "0," * 100000 + "0]", GOOD_DATA),
    "shape with too many dimensions": raw_file({"w": entry(shape=[1] * 2000 + [3, 4])}, GOOD_DATA),
    "entry is not an object": raw_file({"w": [0, 48]}, GOOD_DATA),
    "unknown dtype": raw_file({"w": entry(dtype="F7")}, GOOD_DATA),
    "8-bit float dtype": raw_file({"w": entry(dtype="F8_E4M3")}, GOOD_DATA),
    "lowercase dtype": raw_file({"w": entry(dtype="f32")}, GOOD_DATA),
    "dtype not a string": raw_file({"w": entry(dtype=4)}, GOOD_DATA),
    "missing dtype": raw_file({"w": entry(dtype=None)}, GOOD_DATA),
    "missing shape": raw_file({"w": entry(shape=None)}, GOOD_DATA),
    "missing data_offsets": raw_file({"w": entry(data_offsets=None)}, GOOD_DATA),
    "negative shape": raw_file({"w": entry(shape=[-3, -4])}, GOOD_DATA),
    "float shape": raw_file({"w": entry(shape=[3, 4.0])}, GOOD_DATA),
    "string shape": raw_file({"w": entry(shape="3,4")}, GOOD_DATA),
    "shape overflows int64": raw_file({"w": entry(shape=[2**62, 2**62], data_offsets=[0, 0])}, GOOD_DATA),
    "shape beyond int64": raw_file({"w": entry(shape=[2**70], data_offsets=[0, 48])}, GOOD_DATA),
    "huge shape, offsets to match": raw_file({"w": entry(shape=[2**40, 2**20], data_offsets=[0, 2**62])},
                                             GOOD_DATA),
    "offsets mismatch shape": raw_file({"w": entry(data_offsets=[0, 10])}, GOOD_DATA),
    "offsets reversed": raw_file({"w": entry(data_offsets=[48, 0])}, GOOD_DATA),
    "offsets negative": raw_file({"w": entry(data_offsets=[-48, 0])}, GOOD_DATA),
    "offsets wrong length": raw_file({"w": entry(data_offsets=[0, 24, 48])}, GOOD_DATA),
    "offsets one element": raw_file({"w": entry(data_offsets=[48])}, GOOD_DATA),
    "offsets floats": raw_file({"w": entry(data_offsets=[0.0, 48.0])}, GOOD_DATA),
    "offsets not an array": raw_file({"w": entry(data_offsets={"begin": 0, "end": 48})}, GOOD_DATA),
    "offsets past the end": raw_file({"w": entry(data_offsets=[4, 52])}, GOOD_DATA),
    "offsets far past the end": raw_file({"w": entry(shape=[2**20], data_offsets=[2**40, 2**40 + 2**22])},
                                         GOOD_DATA),
    "overlapping tensors": raw_file({"a": entry(shape=[6], data_offsets=[0, 24]),
                                     "b": entry(shape=[6], data_offsets=[20, 44])}, GOOD_DATA),
    "identical ranges": raw_file({"a": entry(shape=[6], data_offsets=[0, 24]),
                                  "b": entry(shape=[6], data_offsets=[0, 24])}, GOOD_DATA),
    "duplicate names": raw_file(b'{"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}, '
                                b'"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}}', GOOD_DATA),
    "non-string metadata value": raw_file({"__metadata__": {"step": 100}, **GOOD_HEADER}, GOOD_DATA),
    "null metadata value": raw_file({"__metadata__": {"step": None}, **GOOD_HEADER}, GOOD_DATA),
    "metadata not an object": raw_file({"__metadata__": ["step"], **GOOD_HEADER}, GOOD_DATA),
    "metadata is a string": raw_file({"__metadata__": "step=1", **GOOD_HEADER}, GOOD_DATA),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_raises_value_error(tmp_path, case):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(HOSTILE[case])
    with pytest.raises(ValueError) as info:
        load_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError):
        load_metadata(path)


def test_error_messages_name_file_tensor_and_problem(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(raw_file({"w": entry(data_offsets=[0, 10])}, GOOD_DATA))
    with pytest.raises(ValueError) as info:
        load_file(path)
    assert str(info.value) == (f"checkpoint '{path}': tensor 'w': data_offsets [0, 10] do not match "
                               "shape [3, 4] of F32 (48 bytes)")
    path.write_bytes(raw_file({"w": entry(dtype="Q4")}, GOOD_DATA))
    with pytest.raises(ValueError, match=r"tensor 'w': unsupported dtype 'Q4' \(supported: F64, F32, F16, BF16"):
        load_file(path)
    path.write_bytes(raw_file(b'{"w": [1,]}', GOOD_DATA))
    with pytest.raises(ValueError, match=r"header is not valid JSON: invalid JSON at line 1, column 10"):
        load_file(path)


def test_header_over_the_size_limit_is_rejected_without_reading(tmp_path):
    # A sparse 200 MB file whose header claims 100 MB + 1 bytes.
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 100_000_001) + b"{")
        f.truncate(200_000_000)
    with pytest.raises(ValueError, match="exceeds the limit of 100000000 bytes"):
        load_file(path)


def test_truncation_at_every_byte_raises_value_error(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(5, np.float32)}, good,
              metadata={"k": "v"})
    raw = good.read_bytes()
    path = tmp_path / "cut.safetensors"
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError):
            load_file(path)


def test_random_corruption_never_crashes(tmp_path):
    """Flip bytes of a valid file at random: each load either succeeds with the
    declared shapes or raises ValueError; nothing else."""
    good = tmp_path / "good.safetensors"
    save_file({"a": np.arange(12, dtype=np.float32).reshape(3, 4), "bb": np.ones(3, np.float32),
               "c": np.float32(2)}, good, metadata={"kk": "vv"})
    raw = bytearray(good.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    path = tmp_path / "bad.safetensors"
    rng = np.random.default_rng(0)
    outcomes = {"ok": 0, "ValueError": 0}
    for _ in range(400):
        mutated = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, 8 + n))  # corrupt the length field or the header
            mutated[pos] = int(rng.integers(0, 256))
        path.write_bytes(bytes(mutated))
        try:
            loaded = load_file(path)
        except ValueError:
            outcomes["ValueError"] += 1
        else:
            outcomes["ok"] += 1
            assert all(v.dtype == np.float32 for v in loaded.values())
    assert outcomes["ValueError"] > 0


def test_missing_unreadable_and_directory_paths_raise_os_error(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_file(tmp_path / "missing.safetensors")
    assert info.value.filename == tmp_path / "missing.safetensors"
    assert "missing.safetensors" in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_metadata(str(tmp_path / "missing.safetensors"))
    with pytest.raises(IsADirectoryError):
        load_file(tmp_path)
    with pytest.raises(ValueError, match="NUL"):
        load_file(str(tmp_path / "a\0b"))


# ---------------------------------------------------------------------------
# Atomic saves
# ---------------------------------------------------------------------------


def leftovers(directory):
    return [p.name for p in pathlib.Path(directory).iterdir() if ".tmp-" in p.name]


def test_failed_save_leaves_old_file_intact(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_file({"old": np.arange(4, dtype=np.float32)}, path, metadata={"v": "1"})
    before = path.read_bytes()
    bad_calls = [
        lambda: save_file({"": np.ones(2)}, path),
        lambda: save_file({"__metadata__": np.ones(2)}, path),
        lambda: save_file({"ok": np.ones(2), 7: np.ones(2)}, path),
        lambda: save_file({"ok": np.ones(2), "bad": "not an array"}, path),
        lambda: save_file({"ok": np.ones(2)}, path, metadata={"v": 2}),
        lambda: save_file({"bad \udcff": np.ones(2)}, path),
    ]
    for call in bad_calls:
        with pytest.raises((ValueError, TypeError)):
            call()
        assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert load_metadata(path) == {"v": "1"}


def test_os_failures_raise_and_clean_up(tmp_path):
    x = {"x": np.ones(3, np.float32)}
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(IsADirectoryError):  # rename of a file over a directory
        save_file(x, tmp_path / "a_dir")
    with pytest.raises(FileNotFoundError):
        save_file(x, tmp_path / "no" / "such" / "dir.safetensors")
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        save_file(x, tmp_path / "plain" / "x.safetensors")
    assert leftovers(tmp_path) == []
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(PermissionError):
                save_file(x, ro / "x.safetensors")
        finally:
            ro.chmod(0o700)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file size limits")
def test_write_failure_mid_file_keeps_old_checkpoint(tmp_path):
    """A write that fails half-way (file size limit -> EFBIG, as a full disk
    would) raises OSError, keeps the old file and removes the temporary."""
    path = tmp_path / "ckpt.safetensors"
    save_file({"old": np.arange(4, dtype=np.float32)}, path)
    before = path.read_bytes()
    code = f"""
import os, resource, signal, sys
import numpy as np
sys.path[:0] = {sys.path!r}
from cpuformer.io import save_file
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
try:
    save_file({{"big": np.ones((1024, 1024), np.float32)}}, {str(path)!r})
except OSError as e:
    print("OSError", e.errno)
else:
    print("saved")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == f"OSError {errno.EFBIG}", out.stdout + out.stderr
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_successful_overwrite_replaces_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    for step in range(3):
        save_file({f"w{step}": np.full((2, step + 1), step, np.float32)}, path, metadata={"step": str(step)})
        assert list(load_file(path)) == [f"w{step}"]
        assert load_metadata(path) == {"step": str(step)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]


def test_concurrent_loads_and_saves(tmp_path, rng):
    big = rng.standard_normal((256, 1024)).astype(np.float32)
    errors = []

    def work(i):
        try:
            p = tmp_path / f"t{i}.safetensors"
            for _ in range(3):
                save_file({"big": big, "i": np.float32(i)}, p)
                got = load_file(p)
                assert np.array_equal(got["big"], big) and got["i"] == i
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert leftovers(tmp_path) == []
