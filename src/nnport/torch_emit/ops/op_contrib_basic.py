"""onnxruntime contrib ops (domain ``com.microsoft``), the elementwise and normalization ones:
Gelu, FastGelu, BiasGelu, QuickGelu, BiasAdd, FusedMatMul, FusedConv, FusedGemm,
SkipLayerNormalization,
SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization, EmbedLayerNormalization.

onnxruntime's transformers optimizer writes these (``docs/ContribOperators.md`` in onnxruntime
defines them); onnxruntime itself is the reference the tests compare with.  Each op prints as
the few torch calls it fuses: ``F.gelu``, ``F.layer_norm`` / ``nn.LayerNorm``, ``F.rms_norm``,
``nn.Embedding`` ...  ``SimplifiedLayerNormalization`` lives in the default domain in
onnxruntime (it is not an ONNX op), and is registered there.
"""
from __future__ import annotations

import functools
import inspect

import onnx_ir as ir

from ..emitter import Arg, Ctx, register
from .op_conv import conv
from .op_matmul import gemm

MS = "com.microsoft"
_F32 = ir.DataType.FLOAT


def _typed(fn):
    """onnx's checker knows no contrib schema, so nothing checked the attribute types: an
    attribute whose type is not the one the emitter's signature declares (a string where an
    int belongs) is refused before it can reach the generated source."""
    want = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind != p.KEYWORD_ONLY:
            continue
        ann = str(p.annotation)
        for t in ("int", "float", "str"):  # annotations are strings (postponed evaluation)
            if ann.startswith(t):
                want[name] = t
                break
        else:
            want[name] = "numbers"  # numbers or lists of them (pads, clip, activation_params)

    def ok(kind: str, v) -> bool:
        if kind == "int":
            return isinstance(v, int)
        if kind == "float":
            return isinstance(v, (int, float))
        if kind == "str":
            return isinstance(v, str)
        vals = v if isinstance(v, list) else [v]
        return all(isinstance(x, (int, float)) for x in vals)

    @functools.wraps(fn)
    def emit(ctx: Ctx, *args, **kwargs):
        for name, v in kwargs.items():
            kind = want.get(name)
            if kind is not None and v is not None and not ok(kind, v) and not (
                    name == "activations" and isinstance(v, list)
                    and all(isinstance(x, str) and x.isalpha() for x in v)):
                ctx.fail(f"attribute {name!r} has the wrong type ({type(v).__name__})")
        return fn(ctx, *args, **kwargs)

    return emit


def register_ms(op_type: str, versions=1, domain: str = MS):
    """Register an onnxruntime contrib emitter (attribute types checked, see ``_typed``)."""
    def deco(fn):
        register(op_type, versions, domain=domain)(_typed(fn))
        return fn
    return deco


def _used(ctx: Ctx, i: int) -> bool:
    outs = ctx.node.outputs
    return i < len(outs) and outs[i] is not None and (bool(outs[i].uses())
                                                      or outs[i].is_graph_output())


def _eps(ctx: Ctx, v: float) -> str:
    return ctx.lit(float(v), _F32)


# ---- activations ------------------------------------------------------------------------------
@register_ms("Gelu")
def gelu(ctx: Ctx, X: Arg):
    return f"F.gelu({X})"


@register_ms("BiasGelu")
def bias_gelu(ctx: Ctx, A: Arg, B: Arg):
    return f"F.gelu({A} + {B})"


@register_ms("FastGelu")
def fast_gelu(ctx: Ctx, X: Arg, bias: Arg | None = None):
    # 0.5 x (1 + tanh(0.797885 x + 0.035677 x^3)) is torch's tanh approximation
    x = f"{X} + {bias}" if bias is not None else str(X)
    return f"F.gelu({x}, approximate='tanh')"


@register_ms("QuickGelu")
def quick_gelu(ctx: Ctx, X: Arg, *, alpha: float = 1.702):
    return f"{X} * torch.sigmoid({ctx.lit(float(alpha), _F32)} * {X})"


@register_ms("BiasAdd")
def bias_add(ctx: Ctx, X: Arg, bias: Arg, skip: Arg):
    return f"{X} + {bias} + {skip}"


# ---- FusedMatMul ------------------------------------------------------------------------------
def _fused_operand(ctx: Ctx, x: Arg, trans: int, trans_batch: int) -> str:
    if not trans and not trans_batch:
        return str(x)
    rank = ctx.rank(x)
    if trans_batch:
        if rank is None:
            ctx.fail("transBatch needs the input's rank")
        if rank < 3:
            return f"{x}.transpose(-2, -1)" if trans else str(x)
        # the leading dim moves behind the other batch dims: (B0, B1.., M, K) -> (B1.., M, B0, K)
        perm = list(range(1, rank - 1)) + [0, rank - 1]
        if trans:
            perm[-2], perm[-1] = perm[-1], perm[-2]
        return f"{x}.permute({', '.join(map(str, perm))})"
    return f"{x}.transpose(-2, -1)"


@register_ms("FusedMatMul")
def fused_matmul(ctx: Ctx, A: Arg, B: Arg, *, alpha: float = 1.0, transA: int = 0,
                 transB: int = 0, transBatchA: int = 0, transBatchB: int = 0):
    a = _fused_operand(ctx, A, transA, transBatchA)
    b = _fused_operand(ctx, B, transB, transBatchB)
    y = f"torch.matmul({a}, {b})"
    if alpha != 1.0:
        y = f"{y} * {ctx.lit(float(alpha), _F32)}"
    return y


# ---- FusedConv --------------------------------------------------------------------------------
def activation_expr(ctx: Ctx, y: str, activation: str, params) -> str:
    """The activation a fused node (FusedConv, FusedGemm) names, applied to expression ``y``."""
    p = [float(v) for v in (params or [])]
    if not activation or activation == "Identity":
        return y
    if activation == "Relu":
        return f"torch.relu({y})"
    if activation == "Sigmoid":
        return f"torch.sigmoid({y})"
    if activation == "Tanh":
        return f"torch.tanh({y})"
    if activation == "LeakyRelu":
        a = p[0] if p else 0.01
        return f"F.leaky_relu({y}, {ctx.lit(a, _F32)})"
    if activation == "Clip":
        lo, hi = (p + [float("-inf"), float("inf")][len(p):])[:2] if len(p) < 2 else p[:2]
        return f"torch.clamp({y}, {ctx.lit(lo, _F32)}, {ctx.lit(hi, _F32)})"
    if activation == "HardSigmoid":
        a, b = (p + [0.2, 0.5][len(p):])[:2]
        return f"torch.clamp({y} * {ctx.lit(a, _F32)} + {ctx.lit(b, _F32)}, 0, 1)"
    ctx.fail(f"activation {activation!r} is not supported")


@register_ms("FusedConv")
def fused_conv(ctx: Ctx, X: Arg, W: Arg, B: Arg | None = None, Z: Arg | None = None, *,
               activation: str = "", activation_params=None, auto_pad: str = "NOTSET",
               dilations=None, group: int = 1, kernel_shape=None, pads=None, strides=None):
    y = conv(ctx, X, W, B, auto_pad=auto_pad, dilations=dilations, group=group,
             kernel_shape=kernel_shape, pads=pads, strides=strides)
    if Z is not None:
        y = f"{y} + {Z}"
    return activation_expr(ctx, y, activation, activation_params)


@register_ms("FusedGemm")
def fused_gemm(ctx: Ctx, A: Arg, B: Arg, C: Arg | None = None, *, alpha: float = 1.0,
               beta: float = 1.0, transA: int = 0, transB: int = 0, activation: str = "",
               activation_alpha: float | None = None, activation_beta: float | None = None,
               activation_gamma: float | None = None):
    y = gemm(ctx, A, B, C, alpha=alpha, beta=beta, transA=transA, transB=transB)
    params = [p for p in (activation_alpha, activation_beta) if p is not None]
    return activation_expr(ctx, y, activation, params)


# ---- layer norms ------------------------------------------------------------------------------
def _hidden(ctx: Ctx, gamma: Arg) -> int | None:
    s = ctx.shape(gamma)
    return s[-1] if s and len(s) == 1 else None


def _layer_norm(ctx: Ctx, x: str, gamma: Arg, beta: Arg | None, epsilon: float) -> str:
    """LayerNorm over the last dim: an ``nn.LayerNorm`` when gamma (and beta) are weights."""
    g = ctx.const(gamma)
    b = ctx.const(beta) if beta is not None else None
    h = _hidden(ctx, gamma)
    eps = _eps(ctx, epsilon)
    if g is not None and h is not None and (beta is None or b is not None):
        args = [str(h), f"eps={eps}"]
        if beta is None:
            args.append("bias=False")
        dt = g.dtype
        if dt != "float32":
            args.append(f"dtype={ctx.dtype_src(ir.DataType.from_numpy(dt))}")
        mod = ctx.module(ctx.module_hint(gamma), f"nn.LayerNorm({', '.join(args)})",
                         {"weight": g.reshape(h), "bias": None if b is None else b.reshape(h)})
        return f"{mod}({x})"
    bias = f", {beta}" if beta is not None else ""
    return f"F.layer_norm({x}, {_last_dim(ctx, x, h)}, {gamma}{bias}, eps={eps})"


def _last_dim(ctx: Ctx, x: str, h: int | None) -> str:
    """The normalized shape: ``(h,)`` when the weight's size is known, else x's last dim."""
    if h is not None:
        return f"({h},)"
    return f"{x}.shape[-1:]" if x.isidentifier() else f"({x}).shape[-1:]"


def _rms_norm(ctx: Ctx, x: str, gamma: Arg, epsilon: float) -> str:
    g = ctx.const(gamma)
    h = _hidden(ctx, gamma)
    eps = _eps(ctx, epsilon)
    if g is not None and h is not None:
        kw = "" if g.dtype == "float32" else \
            f", dtype={ctx.dtype_src(ir.DataType.from_numpy(g.dtype))}"
        mod = ctx.module(ctx.module_hint(gamma), f"nn.RMSNorm({h}, eps={eps}{kw})",
                         {"weight": g.reshape(h)})
        return f"{mod}({x})"
    return f"F.rms_norm({x}, {_last_dim(ctx, x, h)}, {gamma}, eps={eps})"


def _stats(ctx: Ctx, s: str, epsilon: float, rms: bool) -> tuple[str | None, str]:
    """mean and 1/std over the last dim (keepdim), for nodes whose statistics outputs are used."""
    eps = _eps(ctx, epsilon)
    mu, inv = ctx.tmp("mean"), ctx.tmp("inv_std")
    xf = f"{s}.float()"
    if rms:
        ctx.line(f"{inv} = torch.rsqrt(({xf} * {xf}).mean(-1, keepdim=True) + {eps})")
        return None, inv
    ctx.line(f"{mu} = {xf}.mean(-1, keepdim=True)")
    ctx.line(f"{inv} = torch.rsqrt({xf}.var(-1, unbiased=False, keepdim=True) + {eps})")
    return mu, inv


def _skip_sum(ctx: Ctx, input: Arg, skip: Arg, bias: Arg | None) -> str:
    s = f"{input} + {skip}" + (f" + {bias}" if bias is not None else "")
    if any(_used(ctx, i) for i in range(1, 4)):
        name = ctx.out_names[3] if _used(ctx, 3) else ctx.tmp("skip_sum")
        ctx.line(f"{name} = {s}")
        return name
    return s


def assign(ctx: Ctx, outs: list) -> None:
    """Bind a multi-output node's outputs: an expression is assigned to the output's name
    (unless it already is that name), an unused output is ``None``."""
    for i in range(len(ctx.node.outputs)):
        e = outs[i] if i < len(outs) else None
        if e is None or not _used(ctx, i):
            ctx.out_names[i] = "None"
        elif e != ctx.out_names[i]:
            ctx.line(f"{ctx.out_names[i]} = {e}")


@register_ms("SkipLayerNormalization")
def skip_layer_norm(ctx: Ctx, input: Arg, skip: Arg, gamma: Arg, beta: Arg | None = None,
                    bias: Arg | None = None, *, epsilon: float = 1e-12):
    s = _skip_sum(ctx, input, skip, bias)
    outs = [_layer_norm(ctx, s, gamma, beta, epsilon), None, None, s]
    if _used(ctx, 1) or _used(ctx, 2):
        outs[1], outs[2] = _stats(ctx, s, epsilon, rms=False)
    assign(ctx, outs)


@register_ms("SkipSimplifiedLayerNormalization")
def skip_simplified_layer_norm(ctx: Ctx, input: Arg, skip: Arg, gamma: Arg,
                               bias: Arg | None = None, *, epsilon: float = 1e-12):
    s = _skip_sum(ctx, input, skip, bias)
    outs = [_rms_norm(ctx, s, gamma, epsilon), None, None, s]
    if _used(ctx, 1) or _used(ctx, 2):
        outs[1], outs[2] = _stats(ctx, s, epsilon, rms=True)
    assign(ctx, outs)


@register_ms("SimplifiedLayerNormalization", domain="")
def simplified_layer_norm(ctx: Ctx, X: Arg, scale: Arg, *, axis: int = -1,
                          epsilon: float = 1e-5, stash_type: int = 1):
    rank = ctx.rank(X)
    last = axis == -1 or (rank is not None and axis == rank - 1)
    if last and not _used(ctx, 1):
        return _rms_norm(ctx, str(X), scale, epsilon)
    if rank is None:
        dims = f"tuple(range({axis} % {X}.dim(), {X}.dim()))"
    else:
        ax = axis + rank if axis < 0 else axis
        dims = "(" + ", ".join(str(i) for i in range(ax, rank)) + ("," if rank - ax == 1 else "") + ")"
    inv = ctx.tmp("inv_std")
    xf = f"{X}.float()"
    ctx.line(f"{inv} = torch.rsqrt(({xf} * {xf}).mean(dim={dims}, keepdim=True) + "
             f"{_eps(ctx, epsilon)})")
    y = f"({xf} * {inv}).to({X}.dtype) * {scale}"
    return [y, inv][: len(ctx.node.outputs)]


# ---- EmbedLayerNormalization -----------------------------------------------------------------
def _embedding(ctx: Ctx, ids: str, table: Arg, hint: str) -> str:
    w = ctx.const(table)
    if w is not None and w.ndim == 2:
        kw = "" if w.dtype == "float32" else \
            f", dtype={ctx.dtype_src(ir.DataType.from_numpy(w.dtype))}"
        mod = ctx.module(ctx.module_hint(table) or hint, f"nn.Embedding({w.shape[0]}, "
                         f"{w.shape[1]}{kw})", {"weight": w})
        return f"{mod}({ids})"
    return f"F.embedding({ids}, {table})"


@register_ms("EmbedLayerNormalization")
def embed_layer_norm(ctx: Ctx, input_ids: Arg, segment_ids: Arg | None, word_embedding: Arg,
                     position_embedding: Arg, segment_embedding: Arg | None = None,
                     gamma: Arg = None, beta: Arg = None, mask: Arg | None = None,
                     position_ids: Arg | None = None, *, epsilon: float = 1e-12,
                     mask_index_type: int = 1):
    if position_ids is None:
        pos = ctx.tmp("position_ids")
        ctx.line(f"{pos} = torch.arange({input_ids}.shape[1], device={input_ids}.device)"
                 ".unsqueeze(0)")
    else:
        pos = str(position_ids)
    terms = [_embedding(ctx, str(input_ids), word_embedding, "word_embeddings"),
             _embedding(ctx, pos, position_embedding, "position_embeddings")]
    if segment_ids is not None and segment_embedding is not None:
        terms.append(_embedding(ctx, str(segment_ids), segment_embedding,
                                "token_type_embeddings"))
    emb = ctx.out_names[2] if _used(ctx, 2) else ctx.tmp("embeddings")
    ctx.line(f"{emb} = {' + '.join(terms)}")
    outs = [_layer_norm(ctx, emb, gamma, beta, epsilon), None, None]
    if _used(ctx, 1):
        # the number of ones in each row of the mask (0 without a mask), as onnxruntime does
        if mask is not None:
            outs[1] = f"({mask} == 1).sum(1).to(torch.int32)"
        else:
            outs[1] = (f"torch.zeros({input_ids}.shape[0], dtype=torch.int32, "
                       f"device={input_ids}.device)")
    outs[2] = emb
    assign(ctx, outs)
