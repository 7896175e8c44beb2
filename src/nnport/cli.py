"""The ``nnport`` command line.  Exit codes: 0 success, 1 verification mismatch, 2 error."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from ._version import __version__
from .errors import InputError, NnportError

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise InputError(f"{self.prog}: {message}")


def add_verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="concrete shape for an input with dynamic dims (repeatable)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=file.npy",
                   help="use this array for an input instead of random data (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance (default by dtype)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance (default by dtype)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def verify_kwargs(args) -> dict:
    from .verify.inputs import parse_input_arg, parse_shape_arg

    shapes = dict(parse_shape_arg(s) for s in args.input_shape)
    inputs = dict(parse_input_arg(s) for s in args.input)
    return {"input_shapes": shapes, "inputs": inputs, "seed": args.seed, "rtol": args.rtol,
            "atol": args.atol}


def print_report(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=float))
        return
    print(f"verify {report.b} against {report.a}: "
          f"{'MATCH' if report.ok else 'MISMATCH'} (seed {report.seed}, inputs " +
          ", ".join(f"{k}{v['shape']}" for k, v in report.inputs.items()) + ")")
    for line in report.lines():
        print(line)


def cmd_convert(args) -> int:
    from .convert import convert

    kw = verify_kwargs(args)
    src = args.src
    for plugin in _plugins():
        if hasattr(plugin, "convert_options"):
            kw.update(plugin.convert_options(args))
        if hasattr(plugin, "convert_source"):  # options that belong to the source's loader
            src = plugin.convert_source(args, src)
    if getattr(args, "flat", False):
        kw["flat"] = True
    if getattr(args, "control_flow", None):
        kw["control_flow"] = args.control_flow
    result = convert(src, args.dst, verify=not args.no_verify, **kw)
    if not args.json:
        print("wrote " + ", ".join(str(p) for p in result.outputs))
        for note in getattr(result, "notes", []):
            print(f"note: {note}")
    if result.report is not None:
        print_report(result.report, args.json)
        return EXIT_OK if result.report.ok else EXIT_MISMATCH
    if args.json:
        print(json.dumps({"outputs": [str(p) for p in result.outputs], "verified": False}))
    return EXIT_OK


def cmd_verify(args) -> int:
    from .verify import verify

    if args.locate or args.report:
        return _verify_locate(args)
    report = verify(args.a, args.b, **verify_kwargs(args))
    print_report(report, args.json)
    return EXIT_OK if report.ok else EXIT_MISMATCH


def _verify_locate(args) -> int:
    from .verify import verify
    from .verify.locate import locate

    overlay = None
    if args.report:
        from .io import check_output_path
        from .verify.node_data import node_data_path

        overlay = node_data_path(args.report)
        check_output_path(args.report)
        check_output_path(overlay)
    kw = verify_kwargs(args)
    report = verify(args.a, args.b, **kw)
    loc = None
    if args.report or (args.locate and not report.ok):
        loc = locate(args.a, args.b, report=report, scan_all=bool(args.report), **kw)
    if args.report:
        from .verify.report_html import write_html_report

        from .verify.node_data import write_node_data

        write_html_report(report, loc, args.report)
        write_node_data(loc, overlay)
    if args.json:
        d = report.to_dict()
        if loc is not None:
            d["locate"] = loc.to_dict()
        if args.report:
            d["html_report"] = str(args.report)
            d["node_data"] = str(overlay)
        print(json.dumps(d, indent=2, default=float))
    else:
        print_report(report, False)
        if args.locate:
            if loc is None:
                print("locate: outputs match; nothing to locate")
            else:
                for line in loc.lines():
                    print(line)
        if args.report:
            print(f"wrote {args.report} and {overlay} (the per-node errors on the graph: "
                  f"nnport show {args.a} --node-data {overlay})")
    return EXIT_OK if report.ok else EXIT_MISMATCH


def cmd_inspect(args) -> int:
    from .inspection import format_report, inspect_model

    info = inspect_model(args.src, target=args.target)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print("\n".join(format_report(info)))
    return EXIT_OK


def cmd_show(args) -> int:
    from .show import show
    from .verify.inputs import parse_shape_arg

    shapes = dict(parse_shape_arg(s) for s in args.input_shape)

    def announce(line):
        print(line, flush=True)

    if args.node_data:
        from .show import show_node_data

        show_node_data(args.src, args.node_data, host=args.host, port=args.port,
                       browse=not args.no_browser, announce=announce)
        return EXIT_OK

    show(args.src, host=args.host, port=args.port, browse=not args.no_browser,
         input_shapes=shapes, announce=announce)
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.folder)


def _plugins() -> list:
    """The modules that add subcommands or convert options (``formats.CLI_MODULES``; see
    add_commands, add_convert_options and convert_options in them), those in this build."""
    import importlib

    from . import formats

    return [importlib.import_module(m) for m in formats.CLI_MODULES if formats.available(m)]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nnport", description="Convert neural-network models through ONNX and "
                "verify every conversion numerically.")
    p.add_argument("--version", action="version", version=f"nnport {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    c = sub.add_parser("convert", help="convert a model: ONNX (or Keras/TF) to .py, .param, .pt; "
                       "PyTorch to .onnx")
    c.add_argument("src", help="source model (.onnx; or a PyTorch source for .onnx outputs)")
    c.add_argument("dst", help="destination: .py (PyTorch source + .safetensors), "
                   ".param (ncnn .param + .bin), .onnx, .pt (TorchScript)")
    c.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    c.add_argument("--json", action="store_true", help="machine-readable report")
    c.add_argument("--flat", action="store_true",
                   help=".py: one Model class with flat attributes instead of the module tree "
                        "the exporter recorded")
    c.add_argument("--control-flow", choices=["if", "cond"], default=None,
                   help=".py: an If on a runtime value as a Python if (default) or as "
                        "torch.cond, which torch.export keeps with both branches")
    add_verify_options(c)
    c.set_defaults(fn=cmd_convert)

    v = sub.add_parser("verify", help="run two implementations on the same inputs and compare")
    v.add_argument("a", help="reference (.onnx, run by onnxruntime)")
    v.add_argument("b", help="candidate (.py generated by nnport, .param, .pt or .onnx)")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.add_argument("--locate", action="store_true",
                   help="when outputs diverge, name the first node whose output diverges")
    v.add_argument("--report", metavar="PAGE.html", default=None,
                   help="write a self-contained HTML page with the errors along the graph")
    add_verify_options(v)
    v.set_defaults(fn=cmd_verify)

    i = sub.add_parser("inspect", help="describe a model and list what would not convert")
    i.add_argument("src", help="model (.onnx)")
    i.add_argument("--target", default="torch", choices=["torch", "ncnn"],
                   help="list what cannot convert to this target (default torch)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(fn=cmd_inspect)

    for plugin in _plugins():
        if hasattr(plugin, "add_convert_options"):
            plugin.add_convert_options(c)
        if hasattr(plugin, "add_commands"):
            plugin.add_commands(sub)

    w = sub.add_parser("show", help="view the graph in the browser (offline, Netron's viewer; "
                       "pip install 'nnport[show]')")
    w.add_argument("src", help="model: .onnx, ncnn .param (with its .bin), or a generated .py")
    w.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    w.add_argument("--host", default="localhost", help="address to serve on (default localhost)")
    w.add_argument("--no-browser", action="store_true",
                   help="only serve; print the address to open")
    w.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="example input shape to export a generated .py with (repeatable)")
    w.add_argument("--node-data", metavar="FILE.json", default=None,
                   help="colour the graph with per-node data (verify --locate --report writes "
                   "PAGE.nodedata.json): shown in Google's Model Explorer instead of Netron")
    w.set_defaults(fn=cmd_show)

    d = sub.add_parser("demo", help="build a small model, convert it and verify it")
    d.add_argument("folder", nargs="?", default="nnport-demo", help="where to write (created)")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "fn", None):
            parser.print_help()
            return EXIT_ERROR
        from . import progress

        progress.set_quiet(bool(getattr(args, "quiet", False)))
        progress.start()
        try:
            return args.fn(args)
        finally:
            progress.finish()
    except NnportError as exc:
        print(f"nnport: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("nnport: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("nnport: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug of ours: still one line, but say it is one
        msg = " ".join(str(exc).split())[:300]
        print(f"nnport: internal error: {type(exc).__name__}: {msg} "
              "(please report this with the model)", file=sys.stderr)
        if os.environ.get("NNPORT_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
