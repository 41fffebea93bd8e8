"""RowChecker cell rules on hand-written rows (the corrupted-file fixture is in pipeline/checked_example_gen_test.py)."""

import pytest

from tensorflow.core.example.example_pb2 import Example

from features.columnar import serialized_examples
from features.records import to_example_proto
from features.row_check import RowChecker, infer_column_types, split_csv_line
from features.spec import spec_from_dict

SPEC = spec_from_dict({
    "name": "t",
    "features": [{"name": "user_id", "role": "id"}, {"name": "scenario", "role": "scenario", "values": ["a", "b"]},
                 {"name": "age", "role": "categorical", "dtype": "int64"}, {"name": "price", "role": "numeric"}],
    "labels": {"click": "c", "conversion": "v", "raction": "a"},
})
HEADER = ["user_id", "scenario", "age", "price", "c", "a", "v", "extra_int", "extra_float", "extra_text"]


def _checker():
    types = infer_column_types(SPEC, HEADER, [split_csv_line("u,a,1,2.5,0,0,0,7,0.5,x"),
                                              split_csv_line("u,a,1,2.5,0,0,0,8,1,y")])
    return RowChecker(SPEC, HEADER, types, "f.csv")


def test_column_types_spec_first_then_narrowest_that_fits_the_sample():
    assert [c.dtype for c in _checker().columns] == ["string", "string", "int64", "float32", "int64", "int64",
                                                     "int64", "int64", "float32", "string"]


@pytest.mark.parametrize("line,kind,column", [
    ("u,a,1,2.5,0,0,0,7,0.5,x", None, None),
    ("u,b,,,1,1,1,,,", None, None),  # empty optional cells are missing values, not bad rows
    ("u,a,99999999999999999999,2.5,0,0,0,7,0.5,x", "wrong_type", "age"),  # outside int64
    ("u,a,1,1e39,0,0,0,7,0.5,x", "non_finite", "price"),  # overflows float32
    ("u,a,1,-inf,0,0,0,7,0.5,x", "non_finite", "price"),
    ("u,a,1,2.5,0,0,0,7,nan,x", "non_finite", "extra_float"),
    ("u,a,1,2.5,1.5,0,0,7,0.5,x", "wrong_type", "c"),
    ("u,a,1,2.5,0,0,1,7,0.5,x", None, None),  # a view-through conversion is allowed by default
    ("u,a,1,2.5,0,1,0,7,0.5,x", "impossible_labels", "a"),
    ("u,a,1,2.5,0,0,0,7,0.5", "malformed_line", None),
])
def test_kinds(line, kind, column):
    row = _checker().check_line(line)
    assert row.kind == kind
    if kind:
        assert row.values is None and row.problems[0].column == column
    else:
        assert row.values["user_id"] == "u"


def test_requires_click_from_the_spec_and_the_first_problem_gives_the_kind():
    spec = spec_from_dict(dict(SPEC.to_dict(), labels={"click": "c", "conversion": "v", "raction": "a",
                                                       "requires_click": ["raction", "conversion"]}))
    checker = RowChecker(spec, HEADER, {c.name: c.dtype for c in _checker().columns})
    assert checker.check_line("u,a,1,2.5,0,0,1,7,0.5,x").kind == "impossible_labels"
    row = checker.check_line(",a,x,2.5,,0,0,7,0.5,x")
    assert [p.kind for p in row.problems] == ["wrong_type", "empty_id", "missing_label"]


TRICKY_LINES = [
    "u,a,1,2.5,0,0,0,7,0.5,x", "u,b,,,1,1,1,,,", "u,a,3.0,2.5,0,0,0,7,0.5,x", "u,a,+5,2.5,0,0,0,7,0.5,x",
    "u,a, 5,2.5,0,0,0,7,0.5,x", "u,a,1_000,2.5,0,0,0,7,0.5,x", "u,a,-999999999999999999,2.5,0,0,0,7,0.5,x",
    "u,a,9999999999999999999,2.5,0,0,0,7,0.5,x", "u,a,1,1e39,0,0,0,7,0.5,x", "u,a,1,1e999,0,0,0,7,0.5,x",
    "u,a,1,3.4028235e38,0,0,0,7,0.5,x", "u,a,1,infinity,0,0,0,7,0.5,x", "u,a,1,-.5e-3,0,0,0,7,+1,x",
    "u,a,1,2.5,0,0,0,7,NaN,x", "u,a,1,2.5,1.0,0,0,7,0.5,x", "u,a,1,2.5,01,0,0,7,0.5,x", "u,a,1,2.5,2,0,0,7,0.5,x",
    "u,a,1,2.5,,0,0,7,0.5,x", ",a,1,2.5,0,0,0,7,0.5,x", "u,a,1,2.5,0,1,0,7,0.5,x", "u,a,1,2.5,0,0,1,7,0.5,x",
    'u,a,1,2.5,0,0,0,7,0.5,"x,y"', 'u,a,1,2.5,0,0,0,7,0.5,x"y', "u,a,1,2.5,0,0,0,7,0.5,x\x00",
    "u,a,1,2.5,0,0,0,7,0.5,x\ry", "u,a,1,2.5,0,0,0,7,0.5", "u,a,1,2.5,0,0,0,7,0.5,x,", "ü,a,1,2.5,0,0,0,-7,0.5,é",
]


def test_check_lines_is_check_line_of_every_line():
    """The vectorised block check against the per-row reference on lines each rule sends one way or the
    other (quotes, NUL and CR, field counts, int literals Arrow refuses or that overflow, float32 range,
    labels, requires_click)."""
    checker = _checker()
    block = checker.check_lines(TRICKY_LINES)
    assert sorted(block.fast_rows.tolist() + [i for i, _ in block.exact]) == list(range(len(TRICKY_LINES)))
    # a good row's record is the same tf.Example either way (float32 values, missing cells left out)
    fast = serialized_examples(block.fast, checker.columns).to_pylist()
    for position, record in zip(block.fast_rows.tolist(), fast):
        reference = checker.check_line(TRICKY_LINES[position])
        assert reference.values is not None, TRICKY_LINES[position]
        assert Example.FromString(record) == to_example_proto(reference.values, checker.columns)
    for position, row in block.exact:
        assert row == checker.check_line(TRICKY_LINES[position])
    # the plain good lines take the vectorised path, the rest the per-row one (including the 19-character
    # int64 and 3.4028235e38, just above float32's largest value)
    assert block.fast_rows.tolist() == [0, 1, 12, 15, 20, 27]


def test_a_task_after_another_is_enforced_per_row_and_vectorised():
    """Declared tasks: follow only after like, like only after click (the checked ExampleGen's rule)."""
    spec = spec_from_dict({
        "name": "feed", "features": [{"name": "user_id", "role": "id"},
                                     {"name": "tab", "role": "scenario", "values": ["0", "1"]}],
        "tasks": [{"name": "click", "label": "c"}, {"name": "like", "label": "l", "after": "click"},
                  {"name": "follow", "label": "f", "after": "like"}, {"name": "long_view", "label": "w"}]})
    header = ["user_id", "tab", "c", "l", "f", "w"]
    checker = RowChecker(spec, header, infer_column_types(spec, header, [split_csv_line("u,0,1,1,1,0")]), "f.csv")
    lines = ["u,0,1,1,1,0", "u,0,0,0,0,1", "u,1,0,1,0,0", "u,1,1,0,1,1", "u,1,1,1,0,1"]
    rows = [checker.check_line(line) for line in lines]
    assert [r.kind for r in rows] == [None, None, "impossible_labels", "impossible_labels", None]
    assert rows[2].problems[0].column == "l" and rows[2].problems[0].message == "l is 1 without a click (c is 0)"
    assert rows[3].problems[0].column == "f" and rows[3].problems[0].message == "f is 1 without a like (l is 0)"
    block = checker.check_lines(lines)
    assert block.fast_rows.tolist() == [0, 1, 4]
    assert [(i, r.kind, r.problems[0].column) for i, r in block.exact] == [(2, "impossible_labels", "l"),
                                                                          (3, "impossible_labels", "f")]
