"""A self-contained HTML page for a verification: per-output error statistics and an inline SVG
chart of the relative error of every compared tensor along the graph (log scale), with the first
diverging node marked."""
from __future__ import annotations

import html
import math
import os

from ..io import atomic_output, check_output_path

_W, _H = 900, 320
_ML, _MR, _MT, _MB = 70, 20, 20, 45


def _fmt(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isinf(x) or math.isnan(x):
            return str(x)
        return f"{x:.3g}"
    return html.escape(str(x))


def _chart(loc) -> str:
    trace = list(loc.trace) if loc is not None else []
    if not trace:
        return '<p class="muted">No intermediate tensors were compared.</p>'
    floor = 1e-12
    vals = []
    for t in trace:
        v = t.max_rel_err
        if v is None or (isinstance(v, float) and math.isnan(v)):
            v = floor
        vals.append(max(float(v), floor))
    finite = [v for v in vals if math.isfinite(v)]
    top = max(finite + [1e-3])
    lo = math.floor(math.log10(min(finite + [floor * 10])))
    hi = math.ceil(math.log10(top)) + 1
    if hi <= lo:
        hi = lo + 1
    n = len(trace)
    xmax = max(t.index for t in trace) or 1
    pw, ph = _W - _ML - _MR, _H - _MT - _MB

    def x(idx):
        return _ML + pw * (idx / xmax)

    def y(v):
        lv = math.log10(v) if math.isfinite(v) else hi
        return _MT + ph * (1 - (lv - lo) / (hi - lo))

    parts = [f'<svg id="error-chart" xmlns="http://www.w3.org/2000/svg" width="{_W}" '
             f'height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
             'aria-label="relative error along the graph">',
             f'<rect x="{_ML}" y="{_MT}" width="{pw}" height="{ph}" fill="#fafafa" '
             'stroke="#ccc"/>']
    for e in range(lo, hi + 1):
        yy = y(10.0 ** e)
        parts.append(f'<line class="grid" x1="{_ML}" x2="{_ML + pw}" y1="{yy:.1f}" '
                     f'y2="{yy:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text class="ytick" x="{_ML - 6}" y="{yy + 4:.1f}" text-anchor="end" '
                     f'font-size="11">1e{e}</text>')
    for k in range(6):
        idx = round(xmax * k / 5)
        parts.append(f'<text class="xtick" x="{x(idx):.1f}" y="{_MT + ph + 16}" '
                     f'text-anchor="middle" font-size="11">{idx}</text>')
    parts.append(f'<text x="{_ML + pw / 2}" y="{_H - 8}" text-anchor="middle" font-size="12">'
                 'node index (topological order)</text>')
    parts.append(f'<text x="14" y="{_MT + ph / 2}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 14 {_MT + ph / 2})">max relative error (log)</text>')
    rtol = None
    if loc is not None and loc.report is not None and loc.report.outputs:
        rtol = loc.report.outputs[0].rtol
    if rtol:
        yy = y(rtol)
        parts.append(f'<line class="tolerance" x1="{_ML}" x2="{_ML + pw}" y1="{yy:.1f}" '
                     f'y2="{yy:.1f}" stroke="#e69500" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{_ML + pw - 4}" y="{yy - 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#b07000">rtol {rtol:g}</text>')
    pts = " ".join(f"{x(t.index):.1f},{y(v):.1f}" for t, v in zip(trace, vals))
    parts.append(f'<polyline class="series" fill="none" stroke="#3366cc" stroke-width="1.5" '
                 f'points="{pts}"/>')
    for t, v in zip(trace, vals):
        color = "#3366cc" if t.ok else "#cc3333"
        label = html.escape(f"#{t.index} {t.node or ''} ({t.op}) {t.name}: "
                            f"max_rel={_fmt(t.max_rel_err)}")
        parts.append(f'<circle class="point" cx="{x(t.index):.1f}" cy="{y(v):.1f}" r="2.5" '
                     f'fill="{color}"><title>{label}</title></circle>')
    if loc is not None and loc.found:
        xx = x(loc.index)
        yy = y(max(loc.output.max_rel_err, floor) if math.isfinite(loc.output.max_rel_err)
               else float("inf"))
        parts.append(f'<line id="located-line" x1="{xx:.1f}" x2="{xx:.1f}" y1="{_MT}" '
                     f'y2="{_MT + ph}" stroke="#cc3333" stroke-dasharray="3,3"/>')
        parts.append(f'<circle id="located-node" cx="{xx:.1f}" cy="{yy:.1f}" r="6" fill="none" '
                     f'stroke="#cc3333" stroke-width="2"><title>first diverging node: '
                     f'{html.escape(str(loc.node))} ({html.escape(str(loc.op))})</title></circle>')
        anchor = "end" if xx > _ML + pw * 0.7 else "start"
        dx = -8 if anchor == "end" else 8
        parts.append(f'<text id="located-label" x="{xx + dx:.1f}" y="{_MT + 14}" '
                     f'text-anchor="{anchor}" font-size="12" fill="#cc3333">'
                     f'{html.escape(str(loc.node))} ({html.escape(str(loc.op))})</text>')
    parts.append("</svg>")
    del n
    return "\n".join(parts)


def render_html(report, locate_result=None) -> str:
    loc = locate_result
    status = "MATCH" if report.ok else "MISMATCH"
    rows = []
    for o in report.outputs:
        rows.append("<tr class='{}'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                        "ok" if o.ok else "bad", html.escape(o.name), html.escape(o.dtype),
                        html.escape(str(o.shape)), _fmt(o.max_abs_err), _fmt(o.max_rel_err),
                        _fmt(o.cosine), f"{o.rtol:g} / {o.atol:g}",
                        "ok" if o.ok else "MISMATCH", html.escape(o.note)))
    inputs = ", ".join(f"{html.escape(k)} {html.escape(v['dtype'])}{v['shape']}"
                       for k, v in report.inputs.items())
    located = ""
    if loc is not None:
        if loc.found:
            items = "".join(
                f"<li>{html.escape(i['name'])} ({html.escape(i['kind'])}): "
                + (f"max_abs={_fmt(i['max_abs_err'])} max_rel={_fmt(i['max_rel_err'])}"
                   if "max_abs_err" in i else html.escape(i.get("note", "")))
                + "</li>" for i in loc.inputs)
            src = ""
            if loc.source:
                src = (f"<p>Source: <code>{html.escape(str(loc.source['file']))}:"
                       f"{loc.source['line']}</code> <code>{html.escape(loc.source['text'].strip())}"
                       "</code></p>")
            located = (f"<h2>First diverging node</h2><p id='located'><b>"
                       f"{html.escape(str(loc.node))}</b> ({html.escape(str(loc.op))}), node "
                       f"{loc.index} of {loc.nodes_total}; output "
                       f"<code>{html.escape(loc.output.name)}</code>: max_abs="
                       f"{_fmt(loc.output.max_abs_err)} max_rel={_fmt(loc.output.max_rel_err)}"
                       f"</p><ul>{items}</ul>{src}")
        else:
            located = f"<h2>Locate</h2><p>{html.escape(loc.note)}</p>"
        located += (f"<h2>Relative error along the graph</h2><p class='muted'>"
                    f"{loc.compared} tensors compared (present on both sides).</p>"
                    + _chart(loc))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>nnport verify: {html.escape(report.b)} vs {html.escape(report.a)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 13px; }}
tr.bad td {{ background: #fde8e8; }}
.status-MATCH {{ color: #207020; }} .status-MISMATCH {{ color: #b02020; }}
.muted {{ color: #777; }}
</style></head>
<body>
<h1>nnport verify: <span class="status-{status}">{status}</span></h1>
<p>Reference <code>{html.escape(report.a)}</code>, candidate <code>{html.escape(report.b)}</code>,
seed {report.seed}; inputs: {inputs}</p>
<h2>Outputs</h2>
<table id="outputs"><tr><th>output</th><th>dtype</th><th>shape</th><th>max abs err</th>
<th>max rel err</th><th>cosine</th><th>rtol / atol</th><th>status</th><th>note</th></tr>
{''.join(rows)}
</table>
{located}
</body></html>
"""


def write_html_report(report, locate_result, path: str | os.PathLike) -> None:
    """Write the page atomically (a temporary file renamed over ``path``)."""
    path = check_output_path(path)
    text = render_html(report, locate_result)
    with atomic_output(path, "wb") as fh:
        fh.write(text.encode("utf-8"))
