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
