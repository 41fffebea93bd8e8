"""Typing whole Arrow columns of the impression log at once (the columnar twin of ``features.records``).

Batch scoring reads thousands of rows as one Arrow record batch (pyarrow's CSV reader, Parquet row groups,
tfx-bsl's tf.Example decoder) and types each column with :func:`typed_array`, without a Python object per
cell. The result is what :func:`features.records.typed_value` gives cell by cell, as an Arrow array of the
column's type (``string``, ``int64``, ``float32``) where a missing value is a null:

* missing: a null, an empty string, a NaN, an empty list;
* text -> ``int64``: an integer literal, or a float literal with an integral value (``"3.0"`` is 3);
* text -> ``float32``: a float literal, parsed to the nearest double and then rounded to float32, as Python's
  ``float`` followed by the ``float_list`` of a tf.Example does;
* a list value (Parquet lists, tf.Example features): one item, or for a multivalent column its items joined
  by the column's separator.

The fast path accepts only what it can type exactly as the per-row code does. Text is gated by regular
expressions that are a strict subset of Python's ``int`` / ``float`` grammar; anything else (a malformed
cell, ``" 5"``, ``True``, a float bound for a string column, a list of two values in a single-valued
column ...) raises :class:`NeedsRowCheck`. The caller then types that batch row by row with
``features.records.typed_value``, which returns the exact value or raises the exact error naming the file,
the row and the column. A bad cell therefore costs one batch of per-row work before the run stops; good
input never pays it.
"""

from __future__ import annotations

from typing import List, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.records import Column, to_example_proto

ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float32": pa.float32()}
# An integer literal that Arrow's string -> int64 cast parses as Python's ``int`` does. Arrow refuses a "+"
# sign, so "+7" is not one: it takes the float path (FLOAT_LITERAL), which gives the same integer.
INT_LITERAL = r"^-?[0-9]+$"
FLOAT_LITERAL = (r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?"
                 r"|[nN][aA][nN])$")


class NeedsRowCheck(Exception):
    """A column holds a cell that only the per-row typing (``features.records.typed_value``) can judge."""


def typed_array(values: pa.Array, column: Column) -> pa.Array:
    """``values`` (any Arrow array of one column) as ``column``'s Arrow type; missing values are nulls.

    Raises:
      NeedsRowCheck: some cell is malformed or of a kind this fast path does not type.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_dictionary(kind):
        return typed_array(values.dictionary_decode(), column)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return typed_array(_joined(values, column) if column.separator is not None else _single(values), column)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            return typed_array(values.cast(pa.string()), column)
        except pa.ArrowInvalid:
            raise NeedsRowCheck(f"{column.name}: bytes that are not UTF-8") from None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _from_text(_empty_as_null(values.cast(pa.string())), column)
    if pa.types.is_integer(kind):
        return _from_integers(values, column)
    if pa.types.is_floating(kind):
        return _from_floats(values, column)
    if pa.types.is_null(kind):
        return pa.nulls(len(values), ARROW_TYPES[column.dtype])
    raise NeedsRowCheck(f"{column.name}: Arrow type {kind}")


def typed_batch(batch: pa.RecordBatch, columns: Sequence[Column]) -> pa.RecordBatch:
    """The ``columns`` of ``batch``, each typed with :func:`typed_array` (raises NeedsRowCheck)."""
    return pa.RecordBatch.from_arrays([typed_array(batch.column(c.name), c) for c in columns],
                                      schema=schema(columns))


def schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of typed ``columns``."""
    return pa.schema([(c.name, ARROW_TYPES[c.dtype]) for c in columns])


def batch_from_rows(rows: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> pa.RecordBatch:
    """A typed batch of already typed Python rows (``features.records.typed_value`` results)."""
    return pa.RecordBatch.from_arrays([pa.array([r.get(c.name) for r in rows], ARROW_TYPES[c.dtype])
                                       for c in columns], schema=schema(columns))


def first_null(array: pa.Array) -> int:
    """Index of the first null of ``array``, or -1."""
    if array.null_count == 0:
        return -1
    return int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])


def _empty_as_null(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _all(mask: pa.Array) -> bool:
    """True when every non-null entry of a boolean array is true."""
    return pc.all(mask).as_py() is not False


def _from_text(text: pa.Array, column: Column) -> pa.Array:
    if column.dtype == "string":
        return text
    if column.dtype == "int64" and _all(pc.match_substring_regex(text, INT_LITERAL)):
        try:
            return text.cast(pa.int64())
        except pa.ArrowInvalid:
            raise NeedsRowCheck(f"{column.name}: an integer beyond int64") from None
    if not _all(pc.match_substring_regex(text, FLOAT_LITERAL)):
        raise NeedsRowCheck(f"{column.name}: a cell that is not a number")
    floats = text.cast(pa.float64())
    if column.dtype == "int64" and pc.any(pc.is_nan(floats)).as_py():
        raise NeedsRowCheck(f"{column.name}: 'nan' text for an integer")  # a NaN *value* is missing, the text is not
    return _from_floats(floats, column)


def _from_integers(values: pa.Array, column: Column) -> pa.Array:
    try:
        if column.dtype == "string":
            return values.cast(pa.string())
        if column.dtype == "int64":
            return values.cast(pa.int64())
        return values.cast(pa.float64()).cast(pa.float32(), safe=False)
    except pa.ArrowInvalid:
        raise NeedsRowCheck(f"{column.name}: an integer out of range") from None


def _from_floats(values: pa.Array, column: Column) -> pa.Array:
    values = values.cast(pa.float64())
    values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)  # NaN is missing
    if column.dtype == "float32":
        return values.cast(pa.float32(), safe=False)
    if column.dtype == "string":
        raise NeedsRowCheck(f"{column.name}: floats for a string column")
    integral = pc.and_(pc.is_finite(values), pc.equal(pc.floor(values), values))
    if not _all(integral):
        raise NeedsRowCheck(f"{column.name}: a float that is not an integer")
    try:
        return values.cast(pa.int64())
    except pa.ArrowInvalid:
        raise NeedsRowCheck(f"{column.name}: an integer beyond int64") from None


def _single(lists: pa.Array) -> pa.Array:
    """Each list's one item (null for an empty or null list); NeedsRowCheck when a list has several."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    if lengths.size and lengths.max() > 1:
        raise NeedsRowCheck("a list of several values in a single-valued column")
    items = pc.list_flatten(lists)
    if len(items) == len(lists):
        return items
    return pc.replace_with_mask(pa.nulls(len(lists), items.type), pa.array(lengths == 1), items)


def _joined(lists: pa.Array, column: Column) -> pa.Array:
    """Each list's items joined by the column's separator (an empty list is missing)."""
    items = pc.list_flatten(lists)
    if items.null_count or not (pa.types.is_string(items.type) or pa.types.is_large_string(items.type)
                                or pa.types.is_binary(items.type) or pa.types.is_large_binary(items.type)
                                or pa.types.is_integer(items.type)):
        raise NeedsRowCheck(f"{column.name}: list items that are not text or integers")
    try:
        text_lists = lists.cast(pa.large_list(pa.string()))
    except pa.ArrowInvalid:
        raise NeedsRowCheck(f"{column.name}: bytes that are not UTF-8") from None
    return pc.binary_join(text_lists, column.separator)


# ----------------------------------------------------------------------------------------- tf.Example bytes
# Wire-format tags (field number << 3 | 2, "length-delimited") of the tf.Example messages written below.
_TAG_FIELD_1, _TAG_FIELD_2, _TAG_FIELD_3 = b"\x0a", b"\x12", b"\x1a"
# Feature's oneof: bytes_list = 1, float_list = 2, int64_list = 3.
_FEATURE_KIND_TAG = {"string": _TAG_FIELD_1, "float32": _TAG_FIELD_2, "int64": _TAG_FIELD_3}


def serialized_examples(batch: pa.RecordBatch, columns: Sequence[Column]) -> pa.Array:
    """One serialized ``tf.train.Example`` per row of a typed batch (:func:`typed_batch`), built column-wise.

    Byte for byte ``features.records.to_example_proto(row, columns).SerializeToString(deterministic=True)``
    (a null is left out; the feature map is written in key order), which is also the key TFX's ExampleGen
    hashes to assign a record to its split: the checked ExampleGen's fast path therefore splits a log exactly
    as its per-row path does. The encoding is protobuf's wire format of
    ``Example{features{feature{key, Feature{<kind>_list{value}}}}}``; repeated numeric values are packed.
    """
    entries = []
    for column in _deterministic_order(columns):
        value = _value_bytes(batch.column(column.name), column.dtype)
        # Nested message sizes, innermost first: <kind>_list{value}, Feature{<kind>_list}, map entry{key, value}.
        value_size = pc.fill_null(pc.binary_length(value), 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        list_size = 1 + _varint_sizes(value_size) + value_size
        feature_size = 1 + _varint_sizes(list_size) + list_size
        key = column.name.encode("utf-8")
        key_field = _TAG_FIELD_1 + _varint_scalar(len(key)) + key
        entry_size = len(key_field) + 1 + _varint_sizes(feature_size) + feature_size
        entry = pc.binary_join_element_wise(
            pa.scalar(_TAG_FIELD_1, pa.binary()), _varints(entry_size),
            pa.scalar(key_field + _TAG_FIELD_2, pa.binary()), _varints(feature_size),
            pa.scalar(_FEATURE_KIND_TAG[column.dtype], pa.binary()), _varints(list_size),
            pa.scalar(_TAG_FIELD_1, pa.binary()), _varints(value_size), value, b"")
        entries.append(pc.fill_null(entry, pa.scalar(b"", pa.binary())))  # a missing value writes no entry
    if not entries:
        return pa.array([b""] * batch.num_rows, pa.binary())
    features = pc.binary_join_element_wise(*entries, b"") if len(entries) > 1 else entries[0]
    features_size = pc.binary_length(features).to_numpy(zero_copy_only=False).astype(np.uint64)
    examples = pc.binary_join_element_wise(pa.scalar(_TAG_FIELD_1, pa.binary()), _varints(features_size),
                                           features, b"")
    return pc.if_else(pc.equal(features_size, 0), pa.scalar(b"", pa.binary()), examples)


def _deterministic_order(columns: Sequence[Column]) -> List[Column]:
    """``columns`` in the order in which the protobuf runtime's deterministic serialization writes map keys.

    The order is implementation-defined (upb puts ``p_click_action`` before ``p_click``; C++ protobuf after
    it), so it is read off the runtime itself: one example with every column, serialized deterministically,
    lists its keys in that order.
    """
    by_name = {c.name: c for c in columns}
    example = to_example_proto({c.name: "x" if c.dtype == "string" else 0
                                for c in columns}, columns).SerializeToString(deterministic=True)
    return [by_name[name] for name in _map_keys(example)]


def _map_keys(example: bytes) -> List[str]:
    """The feature keys of a serialized tf.Example, in their wire order."""
    def varint(buf: bytes, at: int):
        value, shift = 0, 0
        while True:
            byte = buf[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if byte < 0x80:
                return value, at

    keys = []
    if not example:
        return keys
    size, at = varint(example, 1)  # Example.features
    end = at + size
    while at < end:
        entry_size, body = varint(example, at + 1)  # Features.feature entry
        key_size, key_at = varint(example, body + 1)  # entry.key
        keys.append(example[key_at:key_at + key_size].decode("utf-8"))
        at = body + entry_size
    return keys


def _value_bytes(values: pa.Array, dtype: str) -> pa.Array:
    """The packed payload of each value (a varint, 4 little-endian float bytes, or the UTF-8 text)."""
    if dtype == "string":
        return values.cast(pa.binary())
    valid = values.is_valid()
    if dtype == "float32":
        data = values.fill_null(0).to_numpy(zero_copy_only=False).astype("<f4")
        out = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(values), [None, pa.py_buffer(data.tobytes())])
        return pc.if_else(valid, out.cast(pa.binary()), pa.scalar(None, pa.binary()))
    out = _varints(values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64))
    return pc.if_else(valid, out, pa.scalar(None, pa.binary()))


def _varints(values: np.ndarray) -> pa.Array:
    """Base-128 varints of unsigned 64-bit ``values`` (a negative int64 viewed as uint64 takes 10 bytes)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    top = int(values.max()) if len(values) else 0
    width = max(1, (top.bit_length() + 6) // 7)  # bytes of the longest varint
    sizes = _varint_sizes(values).astype(np.int32)
    if width == 1:
        data = values.astype(np.uint8)
    else:
        position = np.arange(width, dtype=np.int32)[None, :]
        groups = ((values[:, None] >> (position.astype(np.uint64) * np.uint64(7))) & np.uint64(0x7F)).astype(np.uint8)
        groups |= (position < sizes[:, None] - 1).astype(np.uint8) << np.uint8(7)  # continuation bit
        data = groups[position < sizes[:, None]]
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of each value's varint."""
    sizes = np.ones(len(values), dtype=np.uint64)
    for k in range(1, 10):
        sizes += values >= np.uint64(1 << (7 * k))
    return sizes


def _varint_scalar(value: int) -> bytes:
    return _varints(np.array([value], dtype=np.uint64))[0].as_py()
