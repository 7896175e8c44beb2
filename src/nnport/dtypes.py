"""Element types: ONNX (onnx_ir.DataType) <-> torch <-> numpy."""
from __future__ import annotations

import functools

import numpy as np
import onnx_ir as ir

DT = ir.DataType

# ONNX type -> name of the torch dtype (``torch.<name>``).  Types torch lacks map to the
# nearest container type that holds every value exactly (int4 -> int8, uint16 -> int32 ...).
# Names, not dtypes: code generation runs without importing torch.
_TORCH_NAMES = {
    DT.FLOAT: "float32", DT.DOUBLE: "float64", DT.FLOAT16: "float16", DT.BFLOAT16: "bfloat16",
    DT.INT8: "int8", DT.INT16: "int16", DT.INT32: "int32", DT.INT64: "int64", DT.UINT8: "uint8",
    DT.UINT16: "uint16", DT.UINT32: "uint32", DT.UINT64: "uint64", DT.BOOL: "bool",
    DT.COMPLEX64: "complex64", DT.COMPLEX128: "complex128", DT.FLOAT8E4M3FN: "float8_e4m3fn",
    DT.FLOAT8E5M2: "float8_e5m2", DT.FLOAT8E4M3FNUZ: "float8_e4m3fnuz",
    DT.FLOAT8E5M2FNUZ: "float8_e5m2fnuz", DT.FLOAT8E8M0: "float8_e8m0fnu",
    DT.INT4: "int8", DT.UINT4: "uint8", DT.INT2: "int8", DT.UINT2: "uint8",
}
_SUBBYTE = (DT.INT4, DT.UINT4, DT.INT2, DT.UINT2)


@functools.lru_cache(maxsize=None)
def _torch_map() -> dict:
    """ONNX type -> torch dtype, for the types this torch build has."""
    import torch

    return {k: getattr(torch, v) for k, v in _TORCH_NAMES.items() if hasattr(torch, v)}


# torch has uint16/32/64 tensors but almost no arithmetic on them: generated code computes in
# the next signed type that holds every value (uint64 wraps above 2**63, bit-exact for
# +, -, *, bitwise ops) and converts at the forward() boundary.
COMPUTE_AS = {DT.UINT16: DT.INT32, DT.UINT32: DT.INT64, DT.UINT64: DT.INT64}

FLOAT_TYPES = {DT.FLOAT, DT.DOUBLE, DT.FLOAT16, DT.BFLOAT16, DT.FLOAT8E4M3FN, DT.FLOAT8E5M2,
               DT.FLOAT8E4M3FNUZ, DT.FLOAT8E5M2FNUZ}


def torch_dtype_name(dt: ir.DataType | int) -> str:
    """``float32`` for FLOAT etc.: the torch dtype's attribute name (torch is not imported)."""
    dt = DT(dt)
    try:
        return _TORCH_NAMES[dt]
    except KeyError:
        raise KeyError(f"element type {dt.name} has no torch equivalent") from None


def to_torch_dtype(dt: ir.DataType | int):
    """The torch dtype for ONNX type ``dt`` (imports torch)."""
    dt = DT(dt)
    found = _torch_map().get(dt)
    if found is None:
        raise KeyError(f"element type {dt.name} has no torch equivalent")
    return found


def compute_dtype(dt: ir.DataType | int) -> ir.DataType:
    """The element type generated code computes in for ONNX type ``dt``."""
    dt = DT(dt)
    return COMPUTE_AS.get(dt, dt)


def torch_dtype_src(dt: ir.DataType | int) -> str:
    """``torch.float32`` etc., as generated code spells it (the compute type)."""
    return "torch." + torch_dtype_name(compute_dtype(dt))


def from_torch_dtype(t) -> ir.DataType:
    for k, v in _torch_map().items():
        if v == t and k not in _SUBBYTE:
            return k
    raise KeyError(f"torch dtype {t} has no ONNX equivalent")


def is_float(dt) -> bool:
    return dt is not None and DT(dt) in FLOAT_TYPES


def numpy_to_torch(arr: np.ndarray):
    """Convert any numpy array (including ml_dtypes bfloat16/float8/int4) to a torch tensor."""
    import torch

    arr = np.asarray(arr)
    name = arr.dtype.name
    special = {"bfloat16": (np.uint16, torch.bfloat16),
               "float8_e4m3fn": (np.uint8, torch.float8_e4m3fn),
               "float8_e5m2": (np.uint8, torch.float8_e5m2),
               "float8_e4m3fnuz": (np.uint8, torch.float8_e4m3fnuz),
               "float8_e5m2fnuz": (np.uint8, torch.float8_e5m2fnuz)}
    if name in special:
        view, tdt = special[name]
        return torch.from_numpy(np.array(arr, order="C", copy=True).view(view)).view(tdt)
    if name in ("int4", "int2"):
        return torch.from_numpy(arr.astype(np.int8))
    if name in ("uint4", "uint2"):
        return torch.from_numpy(arr.astype(np.uint8))
    if name == "float8_e8m0fnu" and hasattr(torch, "float8_e8m0fnu"):
        return torch.from_numpy(np.array(arr, order="C", copy=True).view(np.uint8)).view(
            torch.float8_e8m0fnu)
    if arr.dtype == object or arr.dtype.kind in "US":
        raise TypeError("string tensors have no torch equivalent")
    if not arr.flags.writeable or not arr.flags.c_contiguous or any(x < 0 for x in arr.strides):
        # (a size-1 axis with a negative stride still counts as contiguous for numpy)
        arr = np.array(arr, order="C", copy=True)
    return torch.from_numpy(arr)


def torch_to_numpy(t) -> np.ndarray:
    import ml_dtypes
    import torch

    t = t.detach().cpu()
    special = {torch.bfloat16: (torch.uint16, ml_dtypes.bfloat16),
               torch.float8_e4m3fn: (torch.uint8, ml_dtypes.float8_e4m3fn),
               torch.float8_e5m2: (torch.uint8, ml_dtypes.float8_e5m2),
               torch.float8_e4m3fnuz: (torch.uint8, ml_dtypes.float8_e4m3fnuz),
               torch.float8_e5m2fnuz: (torch.uint8, ml_dtypes.float8_e5m2fnuz)}
    if hasattr(torch, "float8_e8m0fnu"):
        special[torch.float8_e8m0fnu] = (torch.uint8, ml_dtypes.float8_e8m0fnu)
    if t.dtype in special:
        view, np_dt = special[t.dtype]
        return t.contiguous().view(view).numpy().view(np_dt)
    if t.dtype in (torch.uint16, torch.uint32, torch.uint64):
        return t.numpy()
    return t.numpy()
