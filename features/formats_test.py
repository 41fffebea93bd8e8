"""One home for input formats: every extension, the fallback to the matched files, and the TFRecord reader."""

import gzip
import struct

import pytest

from features.formats import FormatError, detect_format, format_of_name, iter_tfrecords, iter_tfrecords_of_pattern


@pytest.mark.parametrize("name, fmt", [
    ("a.csv", "csv"), ("a.CSV", "csv"), ("a.csv.gz", "csv"), ("logs/span-*/impressions.csv", "csv"),
    ("a.parquet", "parquet"), ("a.pq", "parquet"),
    ("a.tfrecord", "tfrecord"), ("a.tfrecords", "tfrecord"), ("a.tfr", "tfrecord"),
    ("a.tfrecord.gz", "tfrecord"), ("a.tfrecords.gz", "tfrecord"), ("a.tfr.gz", "tfrecord"),
    ("a.gz", None), ("a.txt", None), ("logs/*", None),
])
def test_every_extension(name, fmt):
    assert format_of_name(name) == fmt


def test_pattern_without_extension_is_decided_by_its_files(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"x\n2\n"))
    assert detect_format(str(tmp_path / "*")) == "csv"
    (tmp_path / "part-0").write_bytes(b"PAR1....")  # Parquet magic, no extension
    with pytest.raises(FormatError, match=r"cannot tell the format.*or pass --input-format csv\|parquet\|tfrecord"):
        detect_format(str(tmp_path / "*"), option="--input-format")
    assert detect_format(str(tmp_path / "part-*")) == "parquet"
    with pytest.raises(FormatError) as e:
        detect_format(str(tmp_path / "none-*"), option=None)
    assert "or pass" not in str(e.value)


def _record(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + b"\0" * 4 + data + b"\0" * 4  # CRCs are not checked


def test_tfrecords_plain_and_gzipped_and_truncated(tmp_path):
    payload = _record(b"first") + _record(b"") + _record(b"third")
    (tmp_path / "a.tfrecord").write_bytes(payload)
    (tmp_path / "b.tfrecord.gz").write_bytes(gzip.compress(payload))
    assert list(iter_tfrecords(str(tmp_path / "a.tfrecord"))) == [b"first", b"", b"third"]
    assert list(iter_tfrecords_of_pattern(str(tmp_path / "*"))) == [b"first", b"", b"third"] * 2
    (tmp_path / "bad.tfrecord").write_bytes(payload[:-3])
    with pytest.raises(FormatError, match=r"bad.tfrecord: record 3 is truncated"):
        list(iter_tfrecords(str(tmp_path / "bad.tfrecord")))
