"""CLI plugin: ``nnport export`` and the export options of ``nnport convert``."""
from __future__ import annotations

import json
import sys


def _add_export_options(p) -> None:
    p.add_argument("--dynamic", action="append", default=[], metavar="NAME=AXIS:DIM,...",
                   help="dynamic axes of an input, e.g. x=0:batch,2:height (repeatable)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset to export to")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default=None,
                   help="torch.onnx exporter (default: dynamo, TorchScript as fallback)")
    p.add_argument("--no-simplify", action="store_true",
                   help="keep the exporter's graph (no constant folding / dead code removal)")
    p.add_argument("--check-shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="also verify at this shape (default: derived from the dynamic axes)")


def add_convert_options(convert_parser) -> None:
    _add_export_options(convert_parser)
    convert_parser.add_argument(
        "--custom-op", action="append", default=[], metavar="DOMAIN::OP=REF",
        help="ONNX -> PyTorch: emit a call to your function for custom-domain nodes; REF is "
        "file.py:function (its source is copied into model.py) or package.module:function "
        "(model.py imports it) (repeatable)")


def parse_custom_op_arg(text: str) -> tuple[str, object]:
    """``my.domain::Upscale=ops.py:upscale`` -> ``("my.domain::Upscale", the function)``, an
    entry of the ``custom_ops`` option (``package.module:function`` stays that string: the
    generated file imports it)."""
    from ..errors import InputError
    from .sources import _import_file, _import_module

    key, sep, ref = text.partition("=")
    domain, sep2, op = key.strip().rpartition("::")
    if not sep or not sep2 or not domain or not op or ":" not in ref:
        raise InputError(f"--custom-op {text!r}: expected DOMAIN::OP=file.py:function or "
                         "DOMAIN::OP=package.module:function")
    left, attr = ref.strip().rsplit(":", 1)
    if left.endswith(".py"):
        from pathlib import Path

        fn = getattr(_import_file(Path(left), f"--custom-op {text}"), attr, None)
        if not callable(fn):
            raise InputError(f"--custom-op {text!r}: {left!r} has no function {attr!r}")
        return f"{domain}::{op}", fn
    mod = _import_module(left, f"--custom-op {text}")
    if not callable(getattr(mod, attr, None)):
        raise InputError(f"--custom-op {text!r}: {left!r} has no function {attr!r}")
    return f"{domain}::{op}", f"{left}:{attr}"


def convert_options(args) -> dict:
    from .args import parse_dynamic_arg, parse_export_shape

    custom_ops = dict(parse_custom_op_arg(t) for t in getattr(args, "custom_op", []) or [])
    dynamic = dict(parse_dynamic_arg(s) for s in getattr(args, "dynamic", []) or [])
    checks = dict(parse_export_shape(s, "--check-shape")
                  for s in getattr(args, "check_shape", []) or [])
    return {"dynamic": dynamic or None, "opset": getattr(args, "opset", None),
            "exporter": getattr(args, "exporter", None),
            "no_simplify": bool(getattr(args, "no_simplify", False)),
            "check_shapes": checks or None, "custom_ops": custom_ops or None}


def cmd_export(args) -> int:
    from ..cli import EXIT_MISMATCH, EXIT_OK, print_report, verify_kwargs
    from .args import parse_export_shape
    from .exporter import export

    opts = convert_options(args)
    kw = verify_kwargs(args)
    shapes = dict(parse_export_shape(s) for s in args.input_shape)
    if args.check:
        return _check(args, shapes)
    import numpy as np
    import torch

    feeds = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in kw["inputs"].items()}
    result = export(args.src, args.dst, input_shapes=shapes, inputs=feeds,
                    dynamic=opts["dynamic"], opset=opts["opset"], exporter=opts["exporter"],
                    simplify_model=not opts["no_simplify"], verify=not args.no_verify,
                    check_shapes=opts["check_shapes"], seed=kw["seed"], rtol=kw["rtol"],
                    atol=kw["atol"], output_names=args.output_name or None)
    if not args.json:
        for note in result.notes:
            if not note.startswith("dynamo exporter failed"):  # already on stderr
                print(f"note: {note}")
        print("wrote " + ", ".join(str(p) for p in result.outputs))
    if result.report is not None:
        print_report(result.report, args.json)
        return EXIT_OK if result.report.ok else EXIT_MISMATCH
    if args.json:
        print(json.dumps({"outputs": [str(p) for p in result.outputs], "verified": False}))
    return EXIT_OK


def _check(args, shapes) -> int:
    from ..cli import EXIT_MISMATCH, EXIT_OK
    from .exporter import _gen_inputs, check_exportable
    from .sources import resolve_source

    source = resolve_source(args.src)
    example = _gen_inputs(source, shapes, {}, args.seed)
    target = source.obj if source.kind != "script" else source.obj
    missing = check_exportable(target, example, opset=args.opset, file=sys.stdout)
    return EXIT_MISMATCH if missing else EXIT_OK


def add_commands(sub) -> None:
    from ..cli import add_verify_options

    e = sub.add_parser("export", help="export a PyTorch model to ONNX, simplified and verified "
                       "against onnxruntime")
    e.add_argument("src", help="file.py:factory, package.module:attr, TorchScript .pt/.pth or "
                   "ExportedProgram .pt2")
    e.add_argument("dst", nargs="?", default=None, help="output .onnx")
    e.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    e.add_argument("--check", action="store_true",
                   help="only report the ops that have no ONNX mapping (exit 1 if any)")
    e.add_argument("--output-name", action="append", default=[], metavar="NAME",
                   help="name of the next graph output, in order (repeatable; default output, "
                   "or output_0, output_1, ...)")
    e.add_argument("--json", action="store_true", help="machine-readable report")
    add_verify_options(e)
    _add_export_options(e)
    e.set_defaults(fn=_run_export)


def _run_export(args) -> int:
    from ..errors import InputError

    if args.dst is None and not args.check:
        raise InputError("nnport export: the output path (.onnx) is required unless --check")
    if args.dst is not None and not args.check and not str(args.dst).lower().endswith(".onnx"):
        raise InputError(f"{args.dst}: nnport export writes .onnx files")
    return cmd_export(args)
