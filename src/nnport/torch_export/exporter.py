"""PyTorch -> ONNX: export (dynamo, TorchScript fallback), simplify, verify against onnxruntime
at the example shape and, for dynamic axes, at a second shape."""
from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ConversionError, InputError
from ..io import ModelProto, check_output_path, proto_from_bytes, save_model
from . import custom_ops, decompose
from .args import parse_dynamic_arg, parse_export_shape  # noqa: F401  (re-exported)
from .sources import Source, resolve_source

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_TS_OPSET = 17


# ----- inputs ---------------------------------------------------------------------------------
def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.from_numpy(np.ascontiguousarray(value))
    except Exception:
        raise InputError(f"input {name!r}: expected a tensor or numpy array, got "
                         f"{type(value).__name__}") from None


def _gen_inputs(source: Source, shapes: dict, given: dict, seed: int,
                dtypes: dict | None = None) -> dict[str, torch.Tensor]:
    """Example inputs in the module's forward order (random normal floats, seeded)."""
    names = source.input_names
    known = set(names)
    for key in list(shapes) + list(given):
        if names and key not in known:
            raise InputError(f"--input-shape {key}: {source.name}.forward has no input {key!r} "
                             f"(inputs: {', '.join(names) or 'none'})")
    required = _required(source)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for n in names:
        if n in given:
            out[n] = _as_tensor(given[n], n)
            continue
        shape = shapes.get(n, source.example_shapes.get(n))
        if shape is None:
            if n in required:
                raise InputError(f"{source.name}.forward needs input {n!r}; give its shape with "
                                 f"--input-shape {n}=D1,D2,...")
            break  # optional inputs after the given ones keep their defaults
        dt = (dtypes or {}).get(n) or source.example_dtypes.get(n, torch.float32)
        if dt.is_floating_point:
            t = torch.randn(tuple(shape), generator=gen).to(dt)
        elif dt == torch.bool:
            t = torch.randint(0, 2, tuple(shape), generator=gen).bool()
        else:
            t = torch.randint(0, 4, tuple(shape), generator=gen).to(dt)
        out[n] = t
    return out


def _required(source: Source) -> set[str]:
    if source.kind == "program":
        return set(source.input_names)
    from .sources import _required_names

    return _required_names(source.obj)


def _flatten(out) -> list[torch.Tensor]:
    leaves = torch.utils._pytree.tree_leaves(out)
    return [x for x in leaves if isinstance(x, torch.Tensor)]


def _run_torch(source: Source, inputs: dict[str, torch.Tensor], what: str) -> list[torch.Tensor]:
    fn = source.module
    try:
        with torch.no_grad():
            return _flatten(fn(*inputs.values()))
    except Exception as exc:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in inputs.items())
        raise InputError(f"{source.name}: running the model on {what} inputs ({shapes}) failed: "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None


# ----- unsupported ops ------------------------------------------------------------------------
def _onnx_registry(opset: int | None, table: dict):
    from torch.onnx._internal.exporter import _registration

    reg = (_registration.ONNXRegistry.from_torchlib(opset) if opset
           else _registration.ONNXRegistry.from_torchlib())
    return reg


def unsupported_ops(program, table: dict | None = None, opset: int | None = None) -> dict[str, int]:
    """Torch ops in an ExportedProgram with no ONNX translation: {op name: count}."""
    from torch.onnx._internal.exporter import _decomp

    table = custom_ops.translation_table(table)
    with _quiet():
        reg = _onnx_registry(opset, table)
        implemented = _decomp.get_onnx_implemented_overloads(reg) + list(table)
        decomp = _decomp.create_onnx_friendly_decomposition_table(set(implemented))
        if decompose.applies(program):
            program = decompose.run(program)
        program = program.run_decompositions(decomp)
    missing: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        target = node.target
        if not isinstance(target, torch._ops.OpOverload):
            continue  # python operators (getitem, sym ops) are handled by the exporter
        if target in table or reg.is_registered(target):
            continue
        name = custom_ops.op_name(target)
        missing[name] = missing.get(name, 0) + 1
    return missing


def _unsupported_message(missing: dict[str, int]) -> str:
    ops = ", ".join(f"{k} (x{v})" if v > 1 else k for k, v in sorted(missing.items()))
    return (f"{len(missing)} op(s) have no ONNX mapping: {ops}; register a translation with "
            "nnport.torch_export.custom_ops.register(op, onnxscript_fn) (dynamo) or "
            "custom_ops.register_symbolic('ns::op', fn, opset) (--exporter torchscript)")


def check_exportable(module, inputs, *, custom: dict | None = None, opset: int | None = None,
                     file=None) -> list[str]:
    """Print a one-line report of the ops that cannot be exported to ONNX and return their names.
    ``inputs``: a tuple of example tensors, or a dict name -> tensor in forward order."""
    if isinstance(inputs, dict):
        inputs = tuple(inputs.values())
    elif isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if isinstance(module, torch.export.ExportedProgram):
        ep = module
    else:
        try:
            ep = _export_program(module.eval(), tuple(inputs))
        except Exception as exc:
            line = f"not exportable: torch.export failed: {_first_line(exc)}"
            print(line, file=file or sys.stdout)
            return [line]
    missing = unsupported_ops(ep, custom, opset)
    name = type(module).__name__
    if missing:
        print(f"{name}: " + _unsupported_message(missing), file=file or sys.stdout)
    else:
        print(f"{name}: every op has an ONNX mapping", file=file or sys.stdout)
    return sorted(missing)


# ----- export ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet():
    """Silence exporter chatter (prints, warnings, torch logging) while it runs."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export",
                                               "torch.fx.experimental.symbolic_shapes",
                                               "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _first_line(exc: BaseException) -> str:
    """The informative line of an exporter error (they are long, multi-part reports)."""
    text = str(exc)
    m = re.search(r"<class '[^']*\.(\w+)'>: (.+)", text)
    if m:
        text = f"{m.group(1)}: {m.group(2)}"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    msg = lines[0] if lines else type(exc).__name__
    return " ".join(msg.split())[:300]


def _dynamic_shapes(source: Source, inputs: dict, dynamic: dict):
    dims: dict[str, object] = {}
    ds = {}
    for n, t in inputs.items():
        axes = dynamic.get(n)
        if not axes:
            ds[n] = None
            continue
        spec = {}
        for axis, dname in axes.items():
            if dname not in dims:
                dims[dname] = torch.export.Dim(dname)
            spec[axis] = dims[dname]
        ds[n] = spec
    return ds if any(v for v in ds.values()) else None


def _check_dynamic(source: Source, inputs: dict, dynamic: dict) -> None:
    for n, axes in dynamic.items():
        if n not in inputs:
            raise InputError(f"--dynamic {n}: {source.name}.forward has no input {n!r} given "
                             f"(inputs: {', '.join(inputs) or 'none'})")
        rank = inputs[n].dim()
        for axis in axes:
            if axis >= rank:
                raise InputError(f"--dynamic {n}: axis {axis} is out of range for a rank-{rank} "
                                 "input")


def _onnx_program(model, args, ds, opset, table, output_names, input_names, simplify):
    with _quiet():
        return torch.onnx.export(model, args, None, dynamo=True, input_names=input_names,
                                 output_names=output_names, opset_version=opset,
                                 dynamic_shapes=ds, custom_translation_table=table or None,
                                 optimize=simplify, verbose=False)


def _export_dynamo(source, inputs, dynamic, opset, table, output_names, simplify):
    if source.kind == "program":
        model, args, ds = source.obj, (), None
    else:
        model, args = source.obj, tuple(inputs.values())
        ds = _dynamic_shapes(source, inputs, dynamic)
    try:
        prog = _onnx_program(model, args, ds, opset, table, output_names, list(inputs), simplify)
    except Exception as first:
        exc = first
        ep = None
        with contextlib.suppress(Exception):
            ep = model if source.kind == "program" else _export_program(model, args, ds)
        if ep is not None and decompose.applies(ep):
            # calls torch cannot translate but nnport can rewrite exactly: export the rewritten
            # program (a failure there is reported as the exporter's own)
            try:
                with _quiet():
                    ep = decompose.run(ep)
                prog = _onnx_program(ep, args, None, opset, table, output_names, list(inputs),
                                     simplify)
                return prog.model_proto
            except Exception as exc2:
                exc = exc2
        if "No ONNX function found" in str(exc) or "DispatchError" in str(exc):
            missing = None
            with contextlib.suppress(Exception):
                ep = ep or _export_program(model, args, ds)
                missing = unsupported_ops(ep, table, opset)
            if missing:
                raise ConversionError(f"{source.name}: {_unsupported_message(missing)}") from None
        raise exc
    ep = getattr(prog, "exported_program", None)
    if ep is not None and decompose.mistranslated(ep):
        with _quiet():
            ep = decompose.run(ep)
        prog = _onnx_program(ep, args, None, opset, table, output_names, list(inputs), simplify)
    return prog.model_proto


def _export_program(module, args, dynamic_shapes=None):
    with _quiet():
        return torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)


def _export_torchscript(source, inputs, dynamic, opset, output_names):
    if source.kind == "program":
        raise ConversionError("an ExportedProgram (.pt2) can only be exported with the dynamo "
                              "exporter")
    buf = io.BytesIO()
    axes = {n: dict(a) for n, a in dynamic.items()}
    with _quiet():
        torch.onnx.export(source.obj, tuple(inputs.values()), buf, dynamo=False,
                          input_names=list(inputs), output_names=output_names,
                          dynamic_axes=axes or None, opset_version=opset or DEFAULT_TS_OPSET,
                          do_constant_folding=True)
    return proto_from_bytes(buf.getvalue())


def simplify(proto: ModelProto) -> ModelProto:
    """onnxscript's optimizer: constant folding, dead code, Shape/Gather/Unsqueeze chains."""
    import onnx_ir as ir
    import onnxscript.optimizer

    model = ir.from_proto(proto)
    with _quiet():
        onnxscript.optimizer.optimize(model)
    return ir.to_proto(model)


def _symbolic_axes(proto: ModelProto) -> dict[str, dict[int, str]]:
    """The symbolic (dynamic) dims of the ONNX inputs: name -> {axis: dim name}."""
    out: dict[str, dict[int, str]] = {}
    for vi in proto.graph.input:
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.dim_param or not d.HasField("dim_value"):
                out.setdefault(vi.name, {})[axis] = d.dim_param or f"{vi.name}:{axis}"
    return out


def _second_shapes(dynamic: dict[str, dict[int, str]],
                   shapes: dict[str, tuple]) -> dict[str, tuple] | None:
    """Change every dynamic dim (consistently per dim name) to get a second shape to check."""
    new: dict[str, int] = {}
    out = dict(shapes)
    for name, axes in dynamic.items():
        if name not in shapes:
            continue
        base = list(shapes[name])
        for axis, dname in axes.items():
            if axis >= len(base):
                continue
            if dname not in new:
                v = base[axis]
                new[dname] = v + 1 if axis == 0 else (v * 2 if v <= 64 else v + 64)
            base[axis] = new[dname]
        out[name] = tuple(base)
    return out if new else None


def _became_static(proto: ModelProto, dynamic: dict) -> list[str]:
    sym = _symbolic_axes(proto)
    names = {vi.name for vi in proto.graph.input}
    lost = []
    for name, axes in dynamic.items():
        for axis in axes:
            if name in names and axis not in sym.get(name, {}):
                lost.append(f"{name}[{axis}]")
    return lost


def _verify(source: Source, proto: ModelProto, inputs: dict, rtol, atol, label: str,
            report=None):
    from ..verify.compare import OutputReport, VerifyReport, compare_arrays
    from ..verify.ort import OrtRunner

    ref = _run_torch(source, inputs, label)
    feeds = {k: v.detach().cpu().numpy() for k, v in inputs.items()}
    if report is None:
        report = VerifyReport("onnxruntime", source.name,
                              {k: {"shape": list(v.shape), "dtype": v.dtype.name}
                               for k, v in feeds.items()})
    runner = OrtRunner(proto)
    in_names = {i.name for i in runner.sess.get_inputs()}
    suffix = "" if label == "example" else " @" + ",".join(
        f"{k}{list(v.shape)}" for k, v in feeds.items())
    try:
        got = runner.run({k: v for k, v in feeds.items() if k in in_names})
    except Exception as exc:
        report.outputs.append(OutputReport(
            "<run>" + suffix, "", [], False, float("inf"), float("inf"), None, 0, 0,
            "onnxruntime failed at this shape (did a dynamic axis become static?): "
            + " ".join(str(exc).split())[:200]))
        return report
    names = runner.output_names
    if len(got) != len(ref):
        report.outputs.append(OutputReport("<outputs>" + suffix, "", [], False, float("inf"),
                                           float("inf"), None, 0, 0,
                                           f"{len(ref)} torch outputs vs {len(got)} ONNX outputs"))
        return report
    for name, r, g in zip(names, ref, got):
        report.outputs.append(compare_arrays(name + suffix, r.detach().cpu().numpy(), g,
                                             rtol, atol))
    return report


def export_proto(src, *, input_shapes: dict | None = None, inputs: dict | None = None,
                 dynamic: dict | None = None, opset: int | None = None,
                 exporter: str | None = None, simplify_model: bool = True,
                 custom: dict | None = None, output_names: list[str] | None = None,
                 seed: int = 0, notes: list | None = None):
    """Export to an in-memory ModelProto.  Returns (proto, source, example inputs)."""
    if exporter not in (None, "auto", *EXPORTERS):
        raise InputError(f"--exporter {exporter!r}: use one of {', '.join(EXPORTERS)}")
    if opset is not None and not (7 <= int(opset) <= 23):
        raise InputError(f"--opset {opset}: expected an opset between 7 and 23")
    notes = notes if notes is not None else []
    source = resolve_source(src)
    dynamic = dict(dynamic or {})
    example = _gen_inputs(source, dict(input_shapes or {}), dict(inputs or {}), seed)
    _check_dynamic(source, example, dynamic)
    ref = _run_torch(source, example, "example")
    if not ref:
        raise InputError(f"{source.name}: the model returns no tensors")
    if output_names is None:
        output_names = ["output"] if len(ref) == 1 else [f"output_{i}" for i in range(len(ref))]
    elif len(output_names) != len(ref):
        raise InputError(f"--output-name: {len(output_names)} name(s) given, the model has "
                         f"{len(ref)} output(s)")
    elif len(set(output_names)) != len(output_names) or set(output_names) & set(example):
        raise InputError(f"--output-name: names must be unique and differ from the inputs "
                         f"({', '.join(output_names)})")
    table = custom_ops.translation_table(custom)
    choice = exporter or "auto"
    if source.kind == "script" and choice == "auto":
        choice = "torchscript"
        notes.append("TorchScript source: using the TorchScript exporter")
    proto = None
    if choice in ("auto", "dynamo"):
        try:
            proto = _export_dynamo(source, example, dynamic, opset, table, output_names,
                                   simplify_model)
            notes.append("exported with the dynamo exporter")
        except ConversionError:
            raise
        except Exception as exc:
            reason = _first_line(exc)
            if choice == "dynamo":
                raise ConversionError(f"{source.name}: the dynamo exporter failed: {reason}") \
                    from None
            msg = (f"dynamo exporter failed ({reason}); falling back to the TorchScript "
                   "exporter")
            notes.append(msg)
            print(f"nnport: note: {msg}", file=sys.stderr)
            choice = "torchscript"
    if proto is None:
        try:
            proto = _export_torchscript(source, example, dynamic, opset, output_names)
            notes.append("exported with the TorchScript exporter")
        except ConversionError:
            raise
        except Exception as exc:
            reason = _first_line(exc)
            m = re.search(r"Exporting the operator '?([\w:.]+)'? to ONNX opset version \d+ is "
                          r"not supported", str(exc)) or re.search(
                r"operator with unrecognized namespace ([\w:.]+)", str(exc))
            if m:
                raise ConversionError(
                    f"{source.name}: {_unsupported_message({m.group(1): 1})}") from None
            raise ConversionError(f"{source.name}: the TorchScript exporter failed: {reason}") \
                from None
    if simplify_model:
        proto = simplify(proto)
    return proto, source, example


def export(src, dst, *, input_shapes: dict | None = None, inputs: dict | None = None,
           dynamic: dict | None = None, opset: int | None = None, exporter: str | None = None,
           simplify_model: bool = True, verify: bool = True, check_shapes: dict | None = None,
           custom: dict | None = None, output_names: list[str] | None = None, seed: int = 0,
           rtol: float | None = None, atol: float | None = None):
    """Export a PyTorch model (module, reference string, .pt TorchScript, .pt2 program) to ONNX at
    ``dst``, simplified and verified against the original in onnxruntime.  Returns a
    ConvertResult; nothing is written when export fails."""
    from ..convert import ConvertResult

    dst = check_output_path(dst)
    notes: list[str] = []
    if isinstance(dynamic, (list, tuple)):
        dynamic = dict(parse_dynamic_arg(d) if isinstance(d, str) else d for d in dynamic)
    proto, source, example = export_proto(
        src, input_shapes=input_shapes, inputs=inputs, dynamic=dynamic, opset=opset,
        exporter=exporter, simplify_model=simplify_model, custom=custom,
        output_names=output_names, seed=seed, notes=notes)
    report = None
    if verify:
        report = _verify(source, proto, example, rtol, atol, "example")
        from ..verify.compare import OutputReport

        lost = _became_static(proto, dynamic or {})
        if lost:
            report.outputs.append(OutputReport(
                "<dynamic axes>", "", [], False, float("inf"), float("inf"), None, 0, 0,
                f"requested dynamic axes became static in the ONNX model: {', '.join(lost)} "
                "(the model specializes on that size; try --exporter torchscript or change "
                "the code)"))
        shapes2 = dict(check_shapes or {})
        if not shapes2:
            axes = dict(dynamic or {}) if dynamic else (
                _symbolic_axes(proto) if source.kind == "program" else {})
            shapes2 = _second_shapes(axes, {k: tuple(v.shape) for k, v in example.items()}) or {}
        if shapes2:
            for k in shapes2:
                if k not in example:
                    raise InputError(f"--check-shape {k}: the model has no input {k!r} "
                                     f"(inputs: {', '.join(example)})")
            full = {k: tuple(shapes2.get(k, tuple(v.shape))) for k, v in example.items()}
            keep = {k: v for k, v in (inputs or {}).items()  # given values whose shape stays
                    if tuple(_as_tensor(v, k).shape) == full.get(k)}
            second = _gen_inputs(source, full, keep, seed + 1,
                                 dtypes={k: v.dtype for k, v in example.items()})
            _verify(source, proto, second, rtol, atol, "second-shape", report)
        report.b = str(dst)
        report.a = f"{source.name} (torch)"
    save_model(proto, dst)
    return ConvertResult([Path(dst)], report, notes)
