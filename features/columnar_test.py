"""Columnar typing: hand-written expected values, and agreement with the per-row reference
(``features.records.typed_value``) on every cell the fast path accepts."""

import math

import numpy as np
import pyarrow as pa
import pytest

from features import columnar
from features.columnar import NeedsRowCheck, typed_array
from features.records import CellError, Column, typed_value

INT = Column("n", "int64")
FLOAT = Column("x", "float32")
TEXT = Column("s", "string")
TAGS = Column("tags", "string", "|")


def _values(array):
    return [None if v is None else v for v in array.to_pylist()]


def test_text_cells_hand_computed():
    assert _values(typed_array(pa.array(["5", "", None, "-0", "+7", "3.0", "1e3"]), INT)) == [5, None, None, 0, 7, 3,
                                                                                            1000]
    got = typed_array(pa.array(["19.42", "", "nan", "-inf", "1e-7", ".5"]), FLOAT)
    assert got.type == pa.float32()
    assert got.to_pylist() == [float(np.float32(19.42)), None, None, -math.inf, float(np.float32(1e-7)), 0.5]
    assert _values(typed_array(pa.array(["u1", "", "a,b"]), TEXT)) == ["u1", None, "a,b"]


def test_float32_rounding_is_double_then_float32():
    # 1.00000005960464477539 lies exactly half-way between two float32s once rounded to a double
    text = "1.0000000596046448"
    assert typed_array(pa.array([text]), FLOAT).to_pylist() == [float(np.float32(float(text)))]


@pytest.mark.parametrize("cell", ["abc", "1.5", "nan", "inf", " 5", "0x10", "1_000", "9223372036854775808"])
def test_cells_outside_the_fast_grammar_go_to_the_row_check_for_ints(cell):
    with pytest.raises(NeedsRowCheck):
        typed_array(pa.array(["1", cell]), INT)


@pytest.mark.parametrize("cell", ["cheap", " 5", "1_000", "0x10", "1e"])
def test_cells_outside_the_fast_grammar_go_to_the_row_check_for_floats(cell):
    with pytest.raises(NeedsRowCheck):
        typed_array(pa.array(["1", cell]), FLOAT)


def test_typed_parquet_values():
    assert _values(typed_array(pa.array([4.0, None, float("nan")]), INT)) == [4, None, None]
    assert typed_array(pa.array([4.0]), INT).type == pa.int64()
    assert _values(typed_array(pa.array([3, None], pa.int32()), FLOAT)) == [3.0, None]
    assert _values(typed_array(pa.array([123, 7]), TEXT)) == ["123", "7"]
    assert _values(typed_array(pa.array([b"u1", b""]), TEXT)) == ["u1", None]
    assert _values(typed_array(pa.array(["a", "b", "a"]).dictionary_encode(), TEXT)) == ["a", "b", "a"]
    assert _values(typed_array(pa.nulls(2), INT)) == [None, None]
    for bad, column in ((pa.array([4.5]), INT), (pa.array([1.5]), TEXT), (pa.array([True]), INT),
                        (pa.array([b"\xff"]), TEXT)):
        with pytest.raises(NeedsRowCheck):
            typed_array(bad, column)


def test_list_cells_single_values_and_joined_tags():
    assert _values(typed_array(pa.array([[7], [], None, [None]]), INT)) == [7, None, None, None]
    with pytest.raises(NeedsRowCheck):
        typed_array(pa.array([[1, 2]]), INT)
    lists = pa.array([["t1", "t2"], [], None, ["t3"]], pa.large_list(pa.large_binary()))
    assert _values(typed_array(lists, TAGS)) == ["t1|t2", None, None, "t3"]
    assert _values(typed_array(pa.array([[1, 2]]), TAGS)) == ["1|2"]
    assert _values(typed_array(pa.array([["a"], ["b", "c"], ["d"]]).slice(1), TAGS)) == ["b|c", "d"]


def _reference(cell, column):
    try:
        return typed_value(cell, column, "w")
    except CellError:
        return CellError


CELLS = ["0", "-12", "+3", "3.0", "2.50", "1e2", "1E-3", ".25", "7.", "nan", "NaN", "inf", "-Infinity", "x",
         "", "4e400", "123456789012", "0.1", "1e-45"]


@pytest.mark.parametrize("column", [INT, FLOAT, TEXT])
def test_fast_path_agrees_with_the_per_row_reference(column):
    for cell in CELLS:
        expected = _reference(cell, column)
        try:
            got = typed_array(pa.array([cell]), column).to_pylist()[0]
        except NeedsRowCheck:
            continue  # the caller then uses the reference itself
        assert expected is not CellError, (cell, got)
        if isinstance(expected, float):
            expected = float(np.float32(expected))
        assert got == expected or (got is None and expected is None), (cell, got, expected)


def test_first_null_and_batches():
    assert columnar.first_null(pa.array([1, 2])) == -1
    assert columnar.first_null(pa.array([1, None, None])) == 1
    batch = pa.record_batch({"n": pa.array(["1", "2"]), "s": pa.array(["a", ""]), "extra": pa.array([0, 0])})
    typed = columnar.typed_batch(batch, [INT, TEXT])
    assert typed.schema == columnar.schema([INT, TEXT])
    assert typed.to_pylist() == [{"n": 1, "s": "a"}, {"n": 2, "s": None}]
    assert columnar.batch_from_rows(typed.to_pylist(), [INT, TEXT]).equals(typed)


def test_serialized_examples_hand_encoded_bytes():
    """Protobuf wire format worked out by hand: Example{features{feature{"a": Feature{int64_list{[1]}}}}}."""
    batch = columnar.batch_from_rows([{"a": 1}, {"a": None}], [Column("a", "int64")])
    int64_list = b"\x0a\x01\x01"                       # Int64List.value (packed): tag 1, 1 byte, varint 1
    feature = b"\x1a\x03" + int64_list                 # Feature.int64_list: tag 3, 3 bytes
    entry = b"\x0a\x01a" + b"\x12\x05" + feature        # map entry: key "a", value Feature (5 bytes)
    example = b"\x0a\x0c" + b"\x0a\x0a" + entry         # Example.features{feature: entry (10 bytes)} (12 bytes)
    assert columnar.serialized_examples(batch, [Column("a", "int64")]).to_pylist() == [example, b""]


def test_serialized_examples_are_the_deterministic_serialization_of_the_per_row_example():
    """Against protobuf itself, on values whose encodings span every varint width, negative integers
    (10-byte varints), float32 rounding, multi-byte UTF-8 longer than 127 bytes, missing values, a row with
    nothing, and keys that are prefixes of each other (whose deterministic order is the runtime's)."""
    from features.records import to_example_proto

    columns = [Column("p_click", "float32"), Column("p_click_action", "float32"), Column("user_id", "string"),
               Column("n", "int64"), Column("é", "string"), Column("p", "int64")]
    rng = np.random.default_rng(7)
    ints = [0, 1, -1, 127, 128, 16383, 16384, 2 ** 63 - 1, -2 ** 63, 2 ** 35 + 3, None]
    floats = [0.0, -0.0, 1.5, 19.42, 3.4e38, -1e-30, None]
    texts = ["u1", "ü" * 100, "", None, "a,b|c"]
    rows = [{"p_click": floats[i % len(floats)], "p_click_action": float(rng.normal()),
             "user_id": texts[i % len(texts)] or None, "n": ints[i % len(ints)],
             "é": texts[(i + 2) % len(texts)] or None,
             "p": ints[(i * 3) % len(ints)]} for i in range(80)]
    rows.append({c.name: None for c in columns})
    batch = columnar.batch_from_rows(rows, columns)
    got = columnar.serialized_examples(batch, columns).to_pylist()
    assert got == [to_example_proto(r, columns).SerializeToString(deterministic=True) for r in rows]
