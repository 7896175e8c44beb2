"""Print how many ONNX operators (default domain) the torch target converts, and which it lacks.

    .venv/bin/python benchmarks/op_coverage.py
"""
import sys

import onnx
import onnx.defs

from nnport.torch_emit import REGISTRY


def main() -> int:
    spec = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain in ("", "ai.onnx") and not s.deprecated:
            spec.setdefault(s.name, set()).add(s.since_version)
    ops = REGISTRY.ops()
    have = sorted(op for (dom, op) in ops if dom == "" and op in spec)
    other = sorted(f"{dom}::{op}" for (dom, op) in ops if dom != "")
    missing = sorted(set(spec) - set(have))
    n_versions = sum(len(spec[op]) for op in have)
    print(f"onnx {onnx.__version__}: {len(spec)} operators in the default domain "
          f"(opset {onnx.defs.onnx_opset_version()})")
    print(f"torch target: {len(have)} operators ({n_versions} spec versions) converted")
    if other:
        print(f"other domains: {len(other)} ({', '.join(other)})")
    print(f"not converted ({len(missing)}): {', '.join(missing)}")
    _contrib_coverage(ops)
    return 0


def _contrib_coverage(ops) -> None:
    """onnxruntime's contrib domain (com.microsoft), against the schemas the installed
    onnxruntime defines."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_c
    except ImportError:
        return
    ms = sorted({s.name for s in ort_c.get_all_operator_schema()
                 if s.domain == "com.microsoft" and not s.deprecated})
    have = sorted(op for (dom, op) in ops if dom == "com.microsoft" and op in ms)
    print(f"onnxruntime com.microsoft: {len(have)} of {len(ms)} contrib operators converted "
          f"({', '.join(have)})")


if __name__ == "__main__":
    sys.exit(main())
