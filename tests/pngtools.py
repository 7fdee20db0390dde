"""A tiny PNG reader (8-bit RGB or RGBA, not interlaced: what Chromium's screenshots are).

Enough to tell a rendered page from a blank one and to measure a drawing, without an imaging
library. ``crop`` writes part of a picture back out, for a person to look at.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Picture:
    """Pixels as rows of bytes, ``channels`` bytes per pixel."""

    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        start = x * self.channels
        return tuple(self.rows[y][start : start + 3])

    def row_colours(self, y: int) -> set[bytes]:
        """The distinct RGB colours in one row."""
        row, step = self.rows[y], self.channels
        return {row[i : i + 3] for i in range(0, len(row), step)}


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    chunks, offset = [], len(SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: str) -> Picture:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG file."""
    with open(path, "rb") as file:
        chunks = _chunks(file.read())
    header = next(body for kind, body in chunks if kind == b"IHDR")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                corner = previous[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return Picture(width, height, channels, rows)


def write_png(picture: Picture, path: str) -> None:
    """Write ``picture`` as a PNG file (no filtering)."""
    colour = 2 if picture.channels == 3 else 6

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", picture.width, picture.height, 8, colour, 0, 0, 0)
    data = zlib.compress(b"".join(b"\x00" + row for row in picture.rows), 6)
    with open(path, "wb") as file:
        file.write(SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def crop(picture: Picture, top: int, bottom: int) -> Picture:
    """Rows ``top`` to ``bottom`` of ``picture``."""
    bottom = min(bottom, picture.height)
    return Picture(picture.width, bottom - top, picture.channels, picture.rows[top:bottom])
