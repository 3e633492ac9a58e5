"""TensorBoard scalar event files, written without TensorFlow or the tensorboard package.

An event file is a sequence of TFRecords, each framed as

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

(little-endian) around one serialized `tensorflow.Event` protobuf. The first record
is `Event{wall_time, file_version: "brain.Event:2"}`; every scalar is
`Event{wall_time, step, summary: Summary{value: [Value{tag, simple_value}]}}`. The
few protobuf fields needed are encoded by hand below (field numbers from
`tensorflow/core/util/event.proto` and `tensorflow/core/framework/summary.proto`).

`EventWriter(logdir).add_scalars(step, {"tag": value, ...})` appends one event per
numeric value to `logdir/events.out.tfevents.<time>.<host>.<pid>`, opening and
closing the file each call, so a killed process leaves at most one partial record
(TensorBoard skips it). View with `tensorboard --logdir runs/`.
"""

import math
import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path

FILE_VERSION = "brain.Event:2"
_CRC32C_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reversed
_MASK_DELTA = 0xA282EAD8


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, as TFRecord uses it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (mod 2^32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord around `data`."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


# ----------------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int (negative int64 as 10-byte two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def summary_value(tag: str, value: float) -> bytes:
    """`Summary.Value{tag (1): string, simple_value (2): float}`."""
    return _length_delimited(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)


def event(
    wall_time: float,
    step: int = 0,
    *,
    file_version: str | None = None,
    scalars: Mapping[str, float] | None = None,
) -> bytes:
    """`Event{wall_time (1): double, step (2): int64, file_version (3): string,
    summary (5): Summary{value (1): repeated Value}}`."""
    out = _key(1, 1) + struct.pack("<d", wall_time)
    if step:
        out += _key(2, 0) + _varint(step)
    if file_version is not None:
        out += _length_delimited(3, file_version.encode())
    if scalars:
        values = b"".join(_length_delimited(1, summary_value(t, v)) for t, v in scalars.items())
        out += _length_delimited(5, values)
    return out


# ----------------------------------------------------------------------------- writer


def _numeric(row: Mapping[str, object]) -> dict[str, float]:
    """The finite int/float entries of `row` (booleans and others left out)."""
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


class EventWriter:
    """Appends scalar summaries to one event file in `logdir`, created on first use."""

    def __init__(self, logdir: str | os.PathLike):
        self.logdir = Path(logdir)
        self.path: Path | None = None

    def _append(self, records: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(records)

    def add_scalars(self, step: int, row: Mapping[str, object], skip: tuple = ("epoch",)) -> None:
        """One event at `step` with every finite number of `row` as `tag: value`."""
        now = time.time()
        if self.path is None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
            self.path = self.logdir / name
            self._append(tfrecord(event(now, file_version=FILE_VERSION)))
        scalars = {k: v for k, v in _numeric(row).items() if k not in skip}
        self._append(tfrecord(event(now, step, scalars=scalars)))
