"""ncnn requires one consumer per blob: a blob read by several layers goes through Split."""
from __future__ import annotations

from ..graph import Graph


def run(g: Graph) -> None:
    uses: dict[str, list[tuple[int, int]]] = {}
    for li, layer in enumerate(g.layers):
        for bi, b in enumerate(layer.bottoms):
            uses.setdefault(b, []).append((li, bi))
    inserts: dict[int, list] = {}
    producer = {t: i for i, layer in enumerate(g.layers) for t in layer.tops}
    for blob, where in uses.items():
        if len(where) < 2:
            continue
        tops = [g.unique(f"{blob}_splitncnn_{k}") for k in range(len(where))]
        for (li, bi), t in zip(where, tops):
            g.layers[li].bottoms[bi] = t
        inserts.setdefault(producer.get(blob, -1), []).append((blob, tops))
    if not inserts:
        return
    from ..graph import Layer
    out = []
    for i in range(-1, len(g.layers)):
        if i >= 0:
            out.append(g.layers[i])
        for blob, tops in inserts.get(i, []):
            out.append(Layer("Split", g.unique(f"splitncnn_{blob}"), [blob], tops))
    g.layers = out
