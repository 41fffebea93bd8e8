"""Input file formats: the one place that tells CSV, Parquet and TFRecord files apart, and reads TFRecord records.

Used by the pipeline (``--data``), batch scoring (``msmt score --input``) and spec inference (``msmt spec
infer``), so that a file name means the same format everywhere. A name is matched by its longest known
extension (``.csv.gz`` is gzipped CSV, ``.tfr.gz`` gzipped TFRecord); without one, the files a pattern
matches decide, and a Parquet file is also recognised by its magic bytes.
"""

from __future__ import annotations

import glob
import gzip
import os
import struct
from typing import Iterator, Optional, Sequence

FORMATS = ("csv", "parquet", "tfrecord")
EXTENSIONS = {
    ".csv": "csv", ".csv.gz": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".tfrecord": "tfrecord", ".tfrecords": "tfrecord", ".tfr": "tfrecord",
    ".tfrecord.gz": "tfrecord", ".tfrecords.gz": "tfrecord", ".tfr.gz": "tfrecord",
}
GZIP_MAGIC, PARQUET_MAGIC = b"\x1f\x8b", b"PAR1"


class FormatError(ValueError):
    """The format of an input cannot be told; the message names the input and what to pass."""


def format_of_name(name: str) -> Optional[str]:
    """The format of a file name or pattern from its longest known extension (None when it has none)."""
    lower = name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext):
            return EXTENSIONS[ext]
    return None


def detect_format(pattern: str, paths: Optional[Sequence[str]] = None, option: Optional[str] = "--format") -> str:
    """``csv``, ``parquet`` or ``tfrecord`` of an input: from the pattern's extension, else from the extensions
    (or, for local files, the Parquet magic bytes) of the files it matches; :class:`FormatError` otherwise,
    naming ``option`` (if the command has one) as the way to say it."""
    found = format_of_name(pattern)
    if found:
        return found
    paths = list(paths) if paths is not None else sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    formats = set()
    for p in paths:
        fmt = format_of_name(p)
        if fmt is None and os.path.isfile(p):
            with open(p, "rb") as fh:
                fmt = "parquet" if fh.read(4) == PARQUET_MAGIC else None
        formats.add(fmt)
    if len(formats) == 1 and None not in formats:
        return formats.pop()
    say = f", or pass {option} {'|'.join(FORMATS)}" if option else ""
    raise FormatError(f"{pattern}: cannot tell the format from the file names; use names ending in .csv[.gz], "
                      f".parquet or .tfrecord[.gz]{say}")


def open_maybe_gzip(path: str):
    """A binary file object of ``path``, decompressed when it starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def iter_tfrecords(path: str) -> Iterator[bytes]:
    """The records of one TFRecord file, gzipped or not, without TensorFlow (CRCs are not checked).

    A truncated or non-TFRecord file raises :class:`FormatError` naming the file and the record."""
    with open_maybe_gzip(path) as fh:
        n = 0
        while True:
            head = fh.read(12)  # uint64 length + uint32 masked crc of the length
            if not head:
                return
            if len(head) < 12:
                raise FormatError(f"{path}: record {n + 1} is truncated (not a TFRecord file?)")
            (length,) = struct.unpack("<Q", head[:8])
            if length > 1 << 31:
                raise FormatError(f"{path}: record {n + 1} claims {length} bytes: not a TFRecord file")
            data = fh.read(length)
            if len(data) < length or len(fh.read(4)) < 4:
                raise FormatError(f"{path}: record {n + 1} is truncated")
            n += 1
            yield data


def iter_tfrecords_of_pattern(pattern: str) -> Iterator[bytes]:
    """The records of every file matching ``pattern``, in file-name order."""
    for path in sorted(glob.glob(pattern)):
        yield from iter_tfrecords(path)
