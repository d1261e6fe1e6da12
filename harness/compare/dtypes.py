"""Element types, described without importing numpy.

Readers learn an array's type from a header (npy descr, safetensors dtype name, torch
storage class). Describing it in plain Python keeps the identical-files path free of the
numpy import; numpy is loaded only once values have to be looked at.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

Kind = Literal["float", "bfloat16", "int", "uint", "bool", "complex", "opaque"]

NATIVE = "<" if sys.byteorder == "little" else ">"


@dataclass(frozen=True)
class DType:
    """An element type: its user-facing name, how to interpret it, and how it is stored."""

    name: str
    kind: Kind
    itemsize: int
    byteorder: str = NATIVE  # "<", ">" or "|" (single byte / not applicable)

    @property
    def numeric(self) -> bool:
        """Whether values (not just bit patterns) can be compared."""
        return self.kind != "opaque"

    @property
    def storage(self) -> str:
        """The numpy dtype string that reads one stored element (bits for bfloat16/opaque)."""
        order = "|" if self.itemsize == 1 else self.byteorder
        if self.kind == "float":
            return f"{order}f{self.itemsize}"
        if self.kind == "complex":
            return f"{order}c{self.itemsize}"
        if self.kind == "int":
            return f"{order}i{self.itemsize}"
        if self.kind in ("uint", "bfloat16"):
            return f"{order}u{self.itemsize}"
        if self.kind == "bool":
            return "|b1"
        return f"|V{self.itemsize}"

    def with_byteorder(self, byteorder: str) -> DType:
        return DType(self.name, self.kind, self.itemsize, byteorder)

    def same_type(self, other: DType) -> bool:
        """Equal as element types; byte order is a storage detail, not a type difference."""
        return (self.name, self.kind, self.itemsize) == (other.name, other.kind, other.itemsize)


def _simple(name: str, kind: Kind, itemsize: int) -> DType:
    return DType(name, kind, itemsize)


FLOAT16 = _simple("float16", "float", 2)
BFLOAT16 = _simple("bfloat16", "bfloat16", 2)
FLOAT32 = _simple("float32", "float", 4)
FLOAT64 = _simple("float64", "float", 8)
COMPLEX64 = _simple("complex64", "complex", 8)
COMPLEX128 = _simple("complex128", "complex", 16)
BOOL = _simple("bool", "bool", 1)
INT8 = _simple("int8", "int", 1)
INT16 = _simple("int16", "int", 2)
INT32 = _simple("int32", "int", 4)
INT64 = _simple("int64", "int", 8)
UINT8 = _simple("uint8", "uint", 1)
UINT16 = _simple("uint16", "uint", 2)
UINT32 = _simple("uint32", "uint", 4)
UINT64 = _simple("uint64", "uint", 8)


def opaque(name: str, itemsize: int) -> DType:
    """A type whose elements are compared by bit pattern only (float8, strings, records)."""
    return DType(name, "opaque", itemsize, "|")


_BY_CODE: dict[str, DType] = {
    "f2": FLOAT16,
    "f4": FLOAT32,
    "f8": FLOAT64,
    "c8": COMPLEX64,
    "c16": COMPLEX128,
    "b1": BOOL,
    "i1": INT8,
    "i2": INT16,
    "i4": INT32,
    "i8": INT64,
    "u1": UINT8,
    "u2": UINT16,
    "u4": UINT32,
    "u8": UINT64,
}

_DESCR = re.compile(r"^([<>|=]?)([a-z]\d+)$")


def from_descr(descr: str) -> DType | None:
    """The type of a simple npy descr such as ``'<f4'``; None when numpy must decide."""
    match = _DESCR.match(descr)
    if match is None or match.group(2) not in _BY_CODE:
        return None
    base = _BY_CODE[match.group(2)]
    order = match.group(1)
    if order in ("", "="):
        order = NATIVE
    return base.with_byteorder(order) if base.itemsize > 1 else base


def from_numpy(dt: np.dtype[Any]) -> DType:
    """The type of a numpy dtype; anything without a value interpretation is opaque."""
    code = f"{dt.kind}{dt.itemsize}"
    if dt.fields is None and dt.subdtype is None and code in _BY_CODE:
        base = _BY_CODE[code]
        order = NATIVE if dt.byteorder in ("=", "|") else dt.byteorder
        return base.with_byteorder(order) if base.itemsize > 1 else base
    return opaque(str(dt), dt.itemsize)


SAFETENSORS: dict[str, DType] = {
    "F64": FLOAT64,
    "F32": FLOAT32,
    "F16": FLOAT16,
    "BF16": BFLOAT16,
    "C64": COMPLEX64,
    "I64": INT64,
    "I32": INT32,
    "I16": INT16,
    "I8": INT8,
    "U64": UINT64,
    "U32": UINT32,
    "U16": UINT16,
    "U8": UINT8,
    "BOOL": BOOL,
    "F8_E4M3": opaque("float8_e4m3fn", 1),
    "F8_E5M2": opaque("float8_e5m2", 1),
    "F8_E8M0": opaque("float8_e8m0fnu", 1),
}

TORCH_STORAGES: dict[str, DType] = {
    "DoubleStorage": FLOAT64,
    "FloatStorage": FLOAT32,
    "HalfStorage": FLOAT16,
    "BFloat16Storage": BFLOAT16,
    "ComplexDoubleStorage": COMPLEX128,
    "ComplexFloatStorage": COMPLEX64,
    "LongStorage": INT64,
    "IntStorage": INT32,
    "ShortStorage": INT16,
    "CharStorage": INT8,
    "ByteStorage": UINT8,
    "BoolStorage": BOOL,
}

TORCH_DTYPES: dict[str, DType] = {
    "float64": FLOAT64,
    "double": FLOAT64,
    "float32": FLOAT32,
    "float": FLOAT32,
    "float16": FLOAT16,
    "half": FLOAT16,
    "bfloat16": BFLOAT16,
    "complex128": COMPLEX128,
    "complex64": COMPLEX64,
    "int64": INT64,
    "long": INT64,
    "int32": INT32,
    "int": INT32,
    "int16": INT16,
    "short": INT16,
    "int8": INT8,
    "uint8": UINT8,
    "uint16": UINT16,
    "uint32": UINT32,
    "uint64": UINT64,
    "bool": BOOL,
    "float8_e4m3fn": opaque("float8_e4m3fn", 1),
    "float8_e5m2": opaque("float8_e5m2", 1),
    "float8_e4m3fnuz": opaque("float8_e4m3fnuz", 1),
    "float8_e5m2fnuz": opaque("float8_e5m2fnuz", 1),
    "float8_e8m0fnu": opaque("float8_e8m0fnu", 1),
}
