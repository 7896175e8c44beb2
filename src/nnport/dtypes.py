"""Element types: ONNX (onnx_ir.DataType) <-> torch <-> numpy."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
import torch

DT = ir.DataType

# ONNX type -> (torch dtype, its name in generated code).  Types torch lacks map to the
# nearest container type that holds every value exactly (int4 -> int8, uint16 -> int32 ...).
_TORCH = {
    DT.FLOAT: torch.float32, DT.DOUBLE: torch.float64, DT.FLOAT16: torch.float16,
    DT.BFLOAT16: torch.bfloat16, DT.INT8: torch.int8, DT.INT16: torch.int16,
    DT.INT32: torch.int32, DT.INT64: torch.int64, DT.UINT8: torch.uint8,
    DT.UINT16: torch.uint16, DT.UINT32: torch.uint32, DT.UINT64: torch.uint64,
    DT.BOOL: torch.bool, DT.COMPLEX64: torch.complex64, DT.COMPLEX128: torch.complex128,
    DT.FLOAT8E4M3FN: torch.float8_e4m3fn, DT.FLOAT8E5M2: torch.float8_e5m2,
    DT.FLOAT8E4M3FNUZ: torch.float8_e4m3fnuz, DT.FLOAT8E5M2FNUZ: torch.float8_e5m2fnuz,
    DT.INT4: torch.int8, DT.UINT4: torch.uint8, DT.INT2: torch.int8, DT.UINT2: torch.uint8,
}
if hasattr(torch, "float8_e8m0fnu"):
    _TORCH[DT.FLOAT8E8M0] = torch.float8_e8m0fnu

# torch has uint16/32/64 tensors but almost no arithmetic on them: generated code computes in
# the next signed type that holds every value (uint64 wraps above 2**63, bit-exact for
# +, -, *, bitwise ops) and converts at the forward() boundary.
COMPUTE_AS = {DT.UINT16: DT.INT32, DT.UINT32: DT.INT64, DT.UINT64: DT.INT64}

FLOAT_TYPES = {DT.FLOAT, DT.DOUBLE, DT.FLOAT16, DT.BFLOAT16, DT.FLOAT8E4M3FN, DT.FLOAT8E5M2,
               DT.FLOAT8E4M3FNUZ, DT.FLOAT8E5M2FNUZ}


def to_torch_dtype(dt: ir.DataType | int) -> torch.dtype:
    dt = DT(dt)
    try:
        return _TORCH[dt]
    except KeyError:
        raise KeyError(f"element type {dt.name} has no torch equivalent") from None


def compute_dtype(dt: ir.DataType | int) -> ir.DataType:
    """The element type generated code computes in for ONNX type ``dt``."""
    dt = DT(dt)
    return COMPUTE_AS.get(dt, dt)


def torch_dtype_src(dt: ir.DataType | int) -> str:
    """``torch.float32`` etc., as generated code spells it (the compute type)."""
    return str(to_torch_dtype(compute_dtype(dt)))


def from_torch_dtype(t: torch.dtype) -> ir.DataType:
    for k, v in _TORCH.items():
        if v == t and k not in (DT.INT4, DT.UINT4, DT.INT2, DT.UINT2):
            return k
    raise KeyError(f"torch dtype {t} has no ONNX equivalent")


def is_float(dt) -> bool:
    return dt is not None and DT(dt) in FLOAT_TYPES


def numpy_to_torch(arr: np.ndarray) -> torch.Tensor:
    """Convert any numpy array (including ml_dtypes bfloat16/float8/int4) to a torch tensor."""
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


def torch_to_numpy(t: torch.Tensor) -> np.ndarray:
    import ml_dtypes

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
