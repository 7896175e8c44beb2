"""CLI plugin: ``nnport simplify``, ``nnport extract``, ``nnport edit``; and ``--locate`` /
``--report`` on ``nnport verify``."""
from __future__ import annotations

import json

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


def _shapes(args) -> dict:
    from ..verify.inputs import parse_shape_arg

    return dict(parse_shape_arg(s) for s in args.input_shape)


def cmd_simplify(args) -> int:
    from .simplify import simplify

    log = None if args.json else (lambda msg: None)
    res = simplify(args.src, args.dst, input_shapes=_shapes(args), verify=not args.no_verify,
                   seed=args.seed, rtol=args.rtol, atol=args.atol, log=log)
    if args.json:
        d = res.to_dict()
        d["output"] = str(args.dst)
        print(json.dumps(d, indent=2, default=float))
    else:
        nb, na = sum(res.before.values()), sum(res.after.values())
        print(f"simplified {args.src} -> {args.dst}: {nb} -> {na} nodes"
              + ("" if res.verified else " (not verified)"))
        for line in res.lines():
            print(line)
    return EXIT_OK


def cmd_extract(args) -> int:
    from .extract import extract

    m = extract(args.src, args.dst, inputs=args.inputs or "", outputs=args.outputs)
    msg = {"output": str(args.dst), "inputs": [i.name for i in m.graph.input],
           "outputs": [o.name for o in m.graph.output], "nodes": len(m.graph.node)}
    if args.json:
        print(json.dumps(msg, indent=2))
    else:
        print(f"wrote {args.dst}: {msg['nodes']} nodes, inputs {', '.join(msg['inputs'])}; "
              f"outputs {', '.join(msg['outputs'])}")
    return EXIT_OK


def cmd_edit(args) -> int:
    from .edit import edit

    res = edit(args.src, args.dst, rename=args.rename, input_shapes=_shapes(args) or None,
               opset=args.opset, outputs=args.output, verify=not args.no_verify, seed=args.seed,
               rtol=args.rtol, atol=args.atol)
    if args.json:
        d = {"output": str(args.dst), "written": res.ok, "notes": res.notes,
             "verify": res.report.to_dict() if res.report is not None else None}
        print(json.dumps(d, indent=2, default=float))
    else:
        for n in res.notes:
            print(f"  {n}")
        if res.report is not None:
            from ..cli import print_report

            print_report(res.report, False)
        if res.ok:
            print(f"wrote {args.dst}")
        else:
            print("NOT written: the opset conversion changes the outputs")
    return EXIT_OK if res.ok else EXIT_MISMATCH


def _tol_options(p) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance (default by dtype)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance (default by dtype)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_commands(sub) -> None:
    s = sub.add_parser("simplify", help="fold constants, remove no-ops, fuse BN; each pass "
                       "verified in onnxruntime")
    s.add_argument("src", help="model (.onnx)")
    s.add_argument("dst", help="simplified model (.onnx)")
    s.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="fix an input's dims (? keeps one dynamic) so shape computations fold")
    _tol_options(s)
    s.set_defaults(fn=cmd_simplify)

    e = sub.add_parser("extract", help="cut out the subgraph between tensors")
    e.add_argument("src", help="model (.onnx)")
    e.add_argument("dst", help="extracted model (.onnx)")
    e.add_argument("--inputs", default="", help="comma-separated tensor names that become inputs")
    e.add_argument("--outputs", required=True, help="comma-separated tensor names to compute")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(fn=cmd_extract)

    d = sub.add_parser("edit", help="rename, reshape inputs, convert opset, expose outputs")
    d.add_argument("src", help="model (.onnx)")
    d.add_argument("dst", help="edited model (.onnx)")
    d.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                   help="rename a tensor or node (repeatable)")
    d.add_argument("--input-shape", action="append", default=[], metavar="NAME=1,3,?,?",
                   help="set an input's shape; ? makes a dim symbolic (repeatable)")
    d.add_argument("--opset", type=int, default=None, help="convert to this opset (verified)")
    d.add_argument("--output", action="append", default=[], metavar="NAME",
                   help="expose an intermediate tensor as a graph output (repeatable)")
    _tol_options(d)
    d.set_defaults(fn=cmd_edit)

