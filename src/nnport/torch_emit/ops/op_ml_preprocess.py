"""ai.onnx.ml preprocessing: Scaler, Normalizer, Binarizer, Imputer, OneHotEncoder,
LabelEncoder, ArrayFeatureExtractor, FeatureVectorizer, CategoryMapper, ZipMap; and
TfIdfVectorizer (ai.onnx, but the same kind of feature extraction: n-gram counts of token ids).

Numeric variants only: torch tensors hold no strings, so string keys/categories (CategoryMapper
always maps strings) are refused with a message naming the node.  ZipMap returns what
onnxruntime returns, a list with one ``{label: probability}`` dict per row (plain Python: it is
the end of a pipeline; drop ZipMap, e.g. skl2onnx's ``zipmap=False``, to keep a tensor)."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register

ML = "ai.onnx.ml"
_F32 = ir.DataType.FLOAT


def _no_strings(ctx: Ctx, what: str):
    ctx.fail(f"{what}: string tensors are not supported (torch has no string dtype)")


def _as_float(ctx: Ctx, X: Arg) -> str:
    return str(X) if ctx.dtype(X) == _F32 else f"{X}.to(torch.float32)"


@register("Scaler", 1, domain=ML)
def scaler(ctx: Ctx, X: Arg, *, offset=None, scale=None):
    x = _as_float(ctx, X)
    out = x
    if offset:
        o = np.asarray(offset, np.float32)
        out = f"({out} - {ctx.lit(float(o[0]), _F32) if o.size == 1 else ctx.weight(o, 'offset')})"
    if scale:
        s = np.asarray(scale, np.float32)
        out = f"{out} * {ctx.lit(float(s[0]), _F32) if s.size == 1 else ctx.weight(s, 'scale')}"
    return out


@register("Normalizer", 1, domain=ML)
def normalizer(ctx: Ctx, X: Arg, *, norm="MAX"):
    x = _as_float(ctx, X)
    if norm == "MAX":
        return f"{x} / {x}.max(dim=-1, keepdim=True).values"
    if norm == "L1":
        return f"{x} / {x}.abs().sum(dim=-1, keepdim=True)"
    if norm == "L2":
        return f"{x} / torch.sqrt(({x} * {x}).sum(dim=-1, keepdim=True))"
    ctx.fail(f"norm {norm!r} is not one of MAX, L1, L2")


@register("Binarizer", 1, domain=ML)
def binarizer(ctx: Ctx, X: Arg, *, threshold=0.0):
    return f"({X} > {ctx.lit(float(threshold), _F32)}).to({X}.dtype)"


@register("Imputer", 1, domain=ML)
def imputer(ctx: Ctx, X: Arg, *, imputed_value_floats=None, imputed_value_int64s=None,
            replaced_value_float=0.0, replaced_value_int64=0):
    if imputed_value_floats:
        vals, dt = np.asarray(imputed_value_floats, np.float32), np.float32
        rep = float(replaced_value_float)
    elif imputed_value_int64s:
        vals, dt = np.asarray(imputed_value_int64s, np.int64), np.int64
        rep = int(replaced_value_int64)
    else:
        ctx.fail("neither imputed_value_floats nor imputed_value_int64s is given")
    v = ctx.lit(vals.tolist()[0]) if vals.size == 1 else ctx.weight(vals, "imputed")
    if dt is np.float32 and np.isnan(rep):
        hit = f"torch.isnan({X})"
    else:
        hit = f"{X} == {ctx.lit(rep, _F32 if dt is np.float32 else None)}"
    fill = v if vals.size == 1 else f"{v}.to({X}.dtype).expand_as({X})"
    return f"torch.where({hit}, {fill}, {X})"


@register("OneHotEncoder", 1, domain=ML)
def one_hot_encoder(ctx: Ctx, X: Arg, *, cats_int64s=None, cats_strings=None, zeros=1):
    if cats_strings:
        _no_strings(ctx, "OneHotEncoder with cats_strings")
    cats = np.asarray(cats_int64s or [], np.int64)
    eq = ctx.tmp("onehot")
    ctx.line(f"{eq} = {X}.to(torch.int64).unsqueeze(-1) == {ctx.weight(cats, 'categories')}")
    if not zeros:
        ctx.line(f"torch._assert(bool({eq}.any(dim=-1).all()), "
                 f"'OneHotEncoder: a value is not among the categories')")
    return f"{eq}.to(torch.float32)"


def _tensor_or(attr_tensor, *lists):
    if attr_tensor is not None:
        return np.asarray(attr_tensor)
    for lst, dt in lists:
        if lst:
            return np.asarray(lst, dt)
    return None


@register("LabelEncoder", (1, 2, 4), domain=ML)
def label_encoder(ctx: Ctx, X: Arg, *, classes_strings=None, default_float=-0.0,
                  default_int64=-1, default_string="_Unused", default_tensor=None,
                  keys_floats=None, keys_int64s=None, keys_strings=None, keys_tensor=None,
                  values_floats=None, values_int64s=None, values_strings=None,
                  values_tensor=None):
    if classes_strings or keys_strings or values_strings or ctx.dtype(X) == ir.DataType.STRING:
        _no_strings(ctx, "LabelEncoder with string keys or values")
    keys = _tensor_or(keys_tensor, (keys_int64s, np.int64), (keys_floats, np.float32))
    vals = _tensor_or(values_tensor, (values_int64s, np.int64), (values_floats, np.float32))
    if keys is None or vals is None or keys.size != vals.size:
        ctx.fail("keys and values must be given, one value per key")
    if vals.dtype.kind in "US" or keys.dtype.kind in "US":
        _no_strings(ctx, "LabelEncoder with string keys or values")
    if default_tensor is not None:
        default = np.asarray(default_tensor).reshape(-1)[0].item()
    elif vals.dtype.kind == "f":
        default = float(default_float)
    else:
        default = int(default_int64)
    eq = ctx.tmp("match")
    kx = f"{X}.unsqueeze(-1)"
    ctx.line(f"{eq} = {kx} == {ctx.weight(keys.reshape(-1), 'keys')}")
    if keys.dtype.kind == "f" and np.isnan(keys).any():  # NaN keys match NaN inputs
        ctx.line(f"{eq} = {eq} | (torch.isnan({kx}) & torch.isnan({ctx.weight(keys.reshape(-1), 'keys')}))")
    vw = ctx.weight(vals.reshape(-1), "values", False)
    dflt = ctx.lit(default, ir.DataType.from_numpy(vals.dtype))
    return (f"torch.where({eq}.any(dim=-1), {vw}[{eq}.to(torch.int8).argmax(dim=-1)], "
            f"torch.full_like({vw}[:1], {dflt}))")


@register("ArrayFeatureExtractor", 1, domain=ML)
def array_feature_extractor(ctx: Ctx, X: Arg, Y: Arg):
    if ctx.dtype(X) == ir.DataType.STRING:
        _no_strings(ctx, "ArrayFeatureExtractor on strings")
    out = f"torch.index_select({X}, -1, {Y}.reshape(-1).to(torch.int64))"
    if ctx.rank(X) == 1:  # onnxruntime returns (1, k) for a vector
        out = f"{out}.unsqueeze(0)"
    return out


@register("FeatureVectorizer", 1, domain=ML)
def feature_vectorizer(ctx: Ctx, *X: Arg, inputdimensions=None):
    dims = [int(d) for d in (inputdimensions or [])]
    if len(dims) != len(X):
        ctx.fail(f"{len(X)} inputs but {len(dims)} inputdimensions")
    parts = []
    for x, d in zip(X, dims):
        flat = ctx.tmp("feat")
        ctx.line(f"{flat} = {x}.to(torch.float32).reshape({x}.shape[0] if {x}.dim() > 1 "
                 f"else 1, -1)[:, :{d}]")
        ctx.line(f"{flat} = F.pad({flat}, (0, {d} - {flat}.shape[1]))")
        parts.append(flat)
    return f"torch.cat([{', '.join(parts)}], dim=1)"


@register("CategoryMapper", 1, domain=ML)
def category_mapper(ctx: Ctx, X: Arg, *, cats_int64s=None, cats_strings=None,
                    default_int64=-1, default_string="_Unused"):
    _no_strings(ctx, "CategoryMapper (it maps strings to integers and back)")


@register("ZipMap", 1, domain=ML)
def zip_map(ctx: Ctx, X: Arg, *, classlabels_int64s=None, classlabels_strings=None):
    labels = classlabels_strings or [int(v) for v in (classlabels_int64s or [])]
    if not labels:
        ctx.fail("ZipMap needs classlabels_int64s or classlabels_strings")
    lab = ctx.lit(list(labels))
    return f"[dict(zip({lab}, row)) for row in {X}.tolist()]"


@register("TfIdfVectorizer", 9)
def tfidf_vectorizer(ctx: Ctx, X: Arg, *, mode: str, min_gram_length: int, max_gram_length: int,
                     max_skip_count: int, ngram_counts, ngram_indexes, pool_int64s=None,
                     pool_strings=None, weights=None):
    """(ai.onnx, feature extraction on token ids): n-gram counts, optionally IDF-weighted."""
    if pool_strings:
        _no_strings(ctx, "TfIdfVectorizer with pool_strings")
    if mode not in ("TF", "IDF", "TFIDF"):
        ctx.fail(f"mode {mode!r} is not one of TF, IDF, TFIDF")
    if not 1 <= min_gram_length <= max_gram_length or max_skip_count < 0:
        ctx.fail(f"gram lengths {min_gram_length}..{max_gram_length} with max_skip_count "
                 f"{max_skip_count} are not a valid range")
    pool = np.asarray(pool_int64s or [], np.int64)
    starts = [int(c) for c in ngram_counts] + [pool.size]
    cols = np.asarray(ngram_indexes, np.int64)
    size = int(cols.max()) + 1 if cols.size else 0
    pools, indexes, gram = [], [], 0
    for level in range(len(starts) - 1):
        n = level + 1
        items = pool[starts[level]:starts[level + 1]]
        if items.size % n:
            ctx.fail(f"pool level {n} holds {items.size} ids, not a whole number of {n}-grams")
        count = items.size // n
        if count and min_gram_length <= n <= max_gram_length:
            if gram + count > cols.size:
                ctx.fail(f"ngram_indexes has {cols.size} entries for more n-grams")
            pools.append(ctx.weight(items.reshape(count, n), f"pool_{n}gram"))
            indexes.append(ctx.weight(cols[gram:gram + count], f"column_{n}gram"))
        gram += count
    out = f"{ctx.helper('_tfidf')}({X}, [{', '.join(pools)}], [{', '.join(indexes)}], " \
          f"max_skip={int(max_skip_count)}, size={size})"
    if mode == "TF":
        return out
    w = np.zeros(size, np.float32)
    w[cols] = np.asarray(weights, np.float32) if weights else 1.0
    scale = ctx.weight(w, "idf_weights")
    return f"({out} > 0).to(torch.float32) * {scale}" if mode == "IDF" else f"{out} * {scale}"
