"""Typed cells and ``tf.Example`` records of the impression log.

One place decides how a raw cell (CSV text, a Parquet value, a tf.Example value) becomes a typed value of
its column, and how typed values become a serialized ``tf.Example``: the checked ExampleGen
(``pipeline.checked_example_gen``) and batch scoring (``serving.scoring``) both use it, so training and
scoring read a log identically.

Column dtypes are the spec's raw dtypes: ``string`` -> ``bytes_list``, ``int64`` -> ``int64_list``,
``float32`` -> ``float_list``. A missing value (None, an empty string, a NaN, an empty list) is left out of
the example, as TFX's CsvExampleGen does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, List, Mapping, Optional, Sequence


# The value that stands for a missing cell where one must be given (``predict_raw`` inputs, the defaults of
# ``serving_default``'s parsing spec): ``features.preprocessing`` densifies every raw input with these same
# values, so a missing cell and this value are one and the same to the model.
MISSING_VALUES = {"string": "", "int64": 0, "float32": math.nan}


class CellError(ValueError):
    """A cell does not parse as its column's dtype; the message names where, the column and the value."""


@dataclasses.dataclass(frozen=True)
class Column:
    """One input column: its raw dtype (``string``, ``int64``, ``float32``) and, for a multivalent
    feature, the separator that joins a list value (Parquet lists) into the one string the model parses."""

    name: str
    dtype: str
    separator: Optional[str] = None


def parse_int(text: str) -> int:
    """``text`` as an integer; ``"3.0"`` from a float-formatted writer is still the integer 3."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


def parse_text(text: str, dtype: str) -> Any:
    """A non-empty text cell as ``dtype``; raises ValueError when it does not parse."""
    if dtype == "int64":
        return parse_int(text)
    if dtype == "float32":
        return float(text)
    return text


def typed_value(value: Any, column: Column, where: str) -> Any:
    """``value`` (CSV text, a Parquet / tf.Example value) as ``column``'s Python type; None when missing.

    Missing: None, an empty string, a NaN and an empty list. Raises CellError naming ``where``.
    """
    if isinstance(value, (list, tuple)):
        value = _single_value(list(value), column, where)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        if isinstance(value, str):
            value = parse_text(value, column.dtype)
        elif column.dtype == "string":
            value = str(value)
        elif column.dtype == "int64":
            value = parse_int(str(value)) if isinstance(value, float) else int(value)
        else:
            value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise CellError(f"{where}, column {column.name!r}: {value!r} is not a valid {column.dtype}") from None
    return None if isinstance(value, float) and math.isnan(value) else value


def _single_value(values: List[Any], column: Column, where: str) -> Any:
    """A list cell as one value: joined by the separator for a multivalent feature, else its one item."""
    if column.separator is not None:
        return column.separator.join(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values)
    if len(values) > 1:
        raise CellError(f"{where}, column {column.name!r}: expected one value, got {len(values)}: {values!r}")
    return values[0] if values else None


def to_example_proto(values: Mapping[str, Any], columns: Sequence[Column]):
    """A ``tf.train.Example`` of the typed ``values`` of ``columns``; missing (None) values are left out."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    feature = example.features.feature
    for column in columns:
        value = values.get(column.name)
        if value is None:
            continue
        if column.dtype == "int64":
            feature[column.name].int64_list.value.append(value)
        elif column.dtype == "float32":
            feature[column.name].float_list.value.append(value)
        else:
            feature[column.name].bytes_list.value.append(value.encode("utf-8"))
    return example


def to_example(values: Mapping[str, Any], columns: Sequence[Column]) -> bytes:
    """Serialized :func:`to_example_proto`."""
    return to_example_proto(values, columns).SerializeToString()
