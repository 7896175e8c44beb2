"""The per-node errors of ``verify --locate --report`` as a graph overlay for Google's Model
Explorer ("node data": a JSON file its ``--node_data_paths`` and its UI's "Load node data" read).

The file is a ``ModelNodeData``: ``{graph id: {"name", "results", ...}}``.  Model Explorer's ONNX
adapter (``model_explorer_onnx``) names the main graph after the ONNX graph and each node after
the ONNX node (onnx_ir's ``NameFixPass`` names the unnamed ones), so the results are keyed the
same way.  Each compared node gets its worst
relative error over its outputs as the value, and a colour: green where every output is within
tolerance, orange where one differs, red for the first diverging node.  Views of the same graph
in Netron (``nnport show``) have no overlay format; Model Explorer is the viewer that shows this.

    model-explorer model.onnx --extensions=model_explorer_onnx --node_data_paths=page.nodedata.json
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..output import atomic_output

OK_COLOR, DIFF_COLOR, FIRST_COLOR = "#a5d6a7", "#ffcc80", "#e53935"
_HUGE = 1e300  # JSON has no infinity; an infinite or NaN error is shown as this


def node_ids(proto) -> tuple[str, dict[str, str]]:
    """The main graph's id and ``{output tensor: node id}`` as Model Explorer's ONNX adapter
    names them: it reads the model with onnx_ir and names unnamed (and renames duplicate) nodes
    with onnx_ir's ``NameFixPass``, so the same pass gives the same ids here; a graph with no
    name at all is ``<main>``."""
    from onnx_ir.passes.common import NameFixPass

    from ..io import from_proto

    model = from_proto(proto)
    NameFixPass()(model)
    ids = {}
    for node in model.graph:
        for out in node.outputs:
            if out.name:
                ids[out.name] = node.name
    name = model.graph.name
    return ("<main>" if name is None else name), ids


def _value(x) -> float:
    x = float(x) if x is not None else math.nan
    return x if math.isfinite(x) else _HUGE


def node_data(loc) -> dict:
    """The overlay for a LocateResult (which carries the reference's node ids)."""
    graph_id, ids = loc.graph_id, loc.node_ids
    worst: dict[str, tuple[float, bool]] = {}
    for t in loc.trace:
        nid = ids.get(t.name)
        if nid is None:
            continue
        v, ok = _value(t.max_rel_err), bool(t.ok)
        if nid in worst:
            v0, ok0 = worst[nid]
            v, ok = max(v, v0), ok and ok0
        worst[nid] = (v, ok)
    first = ids.get(loc.output.name) if loc.found and loc.output is not None else None
    results = {}
    for nid, (v, ok) in worst.items():
        color = FIRST_COLOR if nid == first else OK_COLOR if ok else DIFF_COLOR
        results[nid] = {"value": v, "bgColor": color}
    return {graph_id: {"name": "nnport verify: max relative error", "results": results}}


def node_data_path(report_path: str | os.PathLike) -> Path:
    """Where ``--report page.html`` puts its overlay: ``page.nodedata.json`` beside it."""
    p = Path(report_path)
    return p.with_name(p.stem + ".nodedata.json")


def write_node_data(loc, path: str | os.PathLike) -> None:
    """Write the overlay atomically."""
    text = json.dumps(node_data(loc), indent=1, allow_nan=False)
    with atomic_output(Path(path), "wb") as fh:
        fh.write(text.encode("utf-8"))
