"""Files a step uploads (`files:`): generated media whose names and metadata carry canaries.

Real systems keep people's names in places a form field never reaches: the name of an uploaded
file, the author and description inside a photo's EXIF block or a PNG's text chunks. A
generated file carries the subject's canary-bearing values in exactly those places, so a sweep
after a deletion finds a thumbnail table or a media bucket that kept them.

The images are tiny but well-formed (a one-pixel grey JPEG with an EXIF APP1 segment and a
comment; a one-pixel PNG with tEXt chunks), built here from the format specifications rather
than with an imaging library, which the framework does not otherwise need.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

EXTENSIONS = {"text": "txt", "png": "png", "jpeg": "jpg"}
CONTENT_TYPES = {"text": "text/plain; charset=utf-8", "png": "image/png", "jpeg": "image/jpeg"}


def metadata(values: dict[str, Any]) -> dict[str, str]:
    """The subject's values a generated file carries, by the role they play in it."""
    def pick(*names: str) -> str:
        return next((str(values[n]) for n in names if values.get(n)), str(values.get("canary", "")))

    return {"author": pick("full_name", "username"), "description": pick("email", "username"),
            "comment": pick("custom_field", "username", "full_name")}


def default_filename(kind: str, values: dict[str, Any]) -> str:
    # the name people give their files: their own name, as systems then keep it
    return f"{metadata(values)['author']}.{EXTENSIONS[kind]}"


def generate(kind: str, values: dict[str, Any]) -> bytes:
    meta = metadata(values)
    if kind == "text":
        return "".join(f"{k}: {v}\n" for k, v in meta.items()).encode()
    if kind == "png":
        return _png(meta)
    if kind == "jpeg":
        return _jpeg(meta)
    raise ValueError(f"cannot generate a {kind!r} file (known: {', '.join(EXTENSIONS)})")


# -- PNG: signature, IHDR, tEXt chunks, IDAT, IEND (ISO/IEC 15948) --------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(meta: dict[str, str]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    for key, value in (("Author", meta["author"]), ("Description", meta["description"]),
                       ("Comment", meta["comment"])):
        # tEXt is Latin-1; iTXt would carry UTF-8, but canaries and Faker's en_US names are ASCII
        out += _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace"))
    out += _chunk(b"IDAT", zlib.compress(b"\x00\x80"))  # filter 0, one grey pixel
    return out + _chunk(b"IEND", b"")


# -- JPEG: SOI, APP1 (EXIF), COM, DQT, SOF0, DHT, SOS, EOI (ITU T.81, EXIF 2.32) -------------------

def _segment(marker: int, data: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(data) + 2) + data


def _exif(meta: dict[str, str]) -> bytes:
    """A little-endian TIFF block with one IFD: ImageDescription, Artist, Copyright (ASCII)."""
    tags = [(0x010E, meta["description"]), (0x013B, meta["author"]), (0x8298, meta["comment"])]
    ifd_size = 2 + 12 * len(tags) + 4
    data_offset = 8 + ifd_size
    entries, blobs = b"", b""
    for tag, text in tags:
        raw = text.encode("ascii", "replace") + b"\0"
        if len(raw) <= 4:
            entries += struct.pack("<HHI", tag, 2, len(raw)) + raw.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, 2, len(raw), data_offset + len(blobs))
            blobs += raw
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + blobs


def _jpeg(meta: dict[str, str]) -> bytes:
    # One 8x8 block, one grey component, every coefficient zero: the scan is a DC difference of
    # category 0 and an end-of-block, each a one-bit code in single-symbol Huffman tables.
    one_symbol_table = bytes([1] + [0] * 15) + b"\x00"
    return (b"\xff\xd8"
            + _segment(0xE1, _exif(meta))
            + _segment(0xFE, meta["comment"].encode("ascii", "replace"))
            + _segment(0xDB, b"\x00" + b"\x01" * 64)
            + _segment(0xC0, struct.pack(">BHHB", 8, 1, 1, 1) + b"\x01\x11\x00")
            + _segment(0xC4, b"\x00" + one_symbol_table)
            + _segment(0xC4, b"\x10" + one_symbol_table)
            + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
            + b"\x3f"  # bits 0 (DC category 0) and 0 (EOB), padded with ones
            + b"\xff\xd9")


__all__ = ["CONTENT_TYPES", "EXTENSIONS", "default_filename", "generate", "metadata"]
