"""ai.onnx.ml linear models and SVMs: LinearClassifier, LinearRegressor, SVMClassifier,
SVMRegressor.  Inputs are cast to float32 as onnxruntime does; labels are int64 (string class
labels are refused: torch holds no strings).  Binary outputs follow onnxruntime's layout."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register

ML = "ai.onnx.ml"
_F32 = ir.DataType.FLOAT


def _rows(ctx: Ctx, X: Arg) -> str:
    x = ctx.tmp("x")
    ctx.line(f"{x} = {X}.to(torch.float32)" + (".unsqueeze(0)" if ctx.rank(X) == 1 else ""))
    return x


def _int_labels(ctx: Ctx, ints, strings) -> list[int]:
    if strings:
        ctx.fail("string class labels are not supported (torch tensors hold no strings); "
                 "convert the model with integer labels")
    return [int(v) for v in (ints or [])]


def _post(ctx: Ctx, scores: str, post: str, k: int) -> str:
    """onnxruntime's transform of K >= 2 scores (one target: only PROBIT)."""
    if post == "NONE" or (k < 2 and post != "PROBIT"):
        return scores
    return f"{ctx.helper('_ml_post')}({scores}, {post!r})"


@register("LinearRegressor", 1, domain=ML)
def linear_regressor(ctx: Ctx, X: Arg, *, coefficients=None, intercepts=None,
                     post_transform="NONE", targets=1):
    t = int(targets)
    coef = np.asarray(coefficients or [], np.float32)
    if t < 1 or coef.size == 0 or coef.size % t:
        ctx.fail(f"{coef.size} coefficients do not split into {t} targets")
    w = coef.reshape(t, -1)
    b = np.asarray(intercepts or [0.0] * t, np.float32)
    x = _rows(ctx, X)
    y = f"{x} @ {ctx.weight(w.T.copy(), 'coefficients')} + {ctx.weight(b, 'intercepts')}"
    return _post(ctx, y, post_transform, t)


@register("LinearClassifier", 1, domain=ML)
def linear_classifier(ctx: Ctx, X: Arg, *, classlabels_ints=None, classlabels_strings=None,
                      coefficients=None, intercepts=None, multi_class=0, post_transform="NONE"):
    labels = _int_labels(ctx, classlabels_ints, classlabels_strings)
    b = np.asarray(intercepts or [], np.float32)
    c = len(b)
    coef = np.asarray(coefficients or [], np.float32)
    if c == 0 or coef.size % c:
        ctx.fail(f"{coef.size} coefficients do not split into {c} classes")
    x = _rows(ctx, X)
    s = ctx.tmp("scores")
    ctx.line(f"{s} = {x} @ {ctx.weight(coef.reshape(c, -1).T.copy(), 'coefficients')} + "
             f"{ctx.weight(b, 'intercepts')}")
    if c == 1:
        pos, neg = (labels[1], labels[0]) if len(labels) == 2 else (1, 0)
        label = f"torch.where({s}[:, 0] > 0, {pos}, {neg}).long()"
        if len(labels) == 2:  # onnxruntime adds the second column: [1 - p, p]
            p = _post(ctx, s, post_transform, 2)
            return label, f"torch.cat([1 - {p}, {p}], dim=1)"
        return label, _post(ctx, s, post_transform, 1)
    if len(labels) != c:
        ctx.fail(f"{c} classes of scores but {len(labels)} class labels")
    lab = ctx.weight(np.asarray(labels, np.int64), "classlabels")
    return f"{lab}[torch.argmax({s}, dim=1)]", _post(ctx, s, post_transform, c)


def _kernel(ctx: Ctx, x: str, sv: np.ndarray, kernel_type: str, kernel_params) -> str:
    p = list(kernel_params or []) + [0.0, 0.0, 0.0][len(kernel_params or []):]
    gamma, coef0, degree = (float(v) for v in p[:3])
    if kernel_type not in ("LINEAR", "POLY", "RBF", "SIGMOID"):
        ctx.fail(f"kernel_type {kernel_type!r} is not defined")
    k = ctx.tmp("kernel")
    ctx.line(f"{k} = {ctx.helper('_svm_kernel')}({x}, {ctx.weight(sv, 'support_vectors')}, "
             f"{kernel_type!r}, {ctx.lit(gamma, _F32)}, {ctx.lit(coef0, _F32)}, "
             f"{ctx.lit(degree, _F32)})")
    return k


@register("SVMRegressor", 1, domain=ML)
def svm_regressor(ctx: Ctx, X: Arg, *, coefficients=None, kernel_params=None,
                  kernel_type="LINEAR", n_supports=0, one_class=0, post_transform="NONE",
                  rho=None, support_vectors=None):
    coef = np.asarray(coefficients or [], np.float32)
    r = float((rho or [0.0])[0])
    x = _rows(ctx, X)
    n = int(n_supports)
    if n > 0:
        sv = np.asarray(support_vectors or [], np.float32)
        if sv.size % n or coef.size < n:
            ctx.fail("support_vectors / coefficients do not match n_supports")
        k = _kernel(ctx, x, sv.reshape(n, -1), kernel_type, kernel_params)
        y = f"({k}.double() @ {ctx.weight(coef[:n].astype(np.float64).reshape(n, 1), 'dual_coef', False)}" \
            f" + {r!r}).float()"
    else:
        y = f"{x} @ {ctx.weight(coef.reshape(-1, 1), 'coefficients')} + {ctx.lit(r, _F32)}"
    if one_class:
        y = f"torch.where({y} > 0, 1.0, -1.0)"
    return _post(ctx, y, post_transform, 1)


@register("SVMClassifier", 1, domain=ML)
def svm_classifier(ctx: Ctx, X: Arg, *, classlabels_ints=None, classlabels_strings=None,
                   coefficients=None, kernel_params=None, kernel_type="LINEAR", post_transform="NONE",
                   prob_a=None, prob_b=None, rho=None, support_vectors=None,
                   vectors_per_class=None):
    labels = _int_labels(ctx, classlabels_ints, classlabels_strings)
    if not vectors_per_class:
        ctx.fail("SVMClassifier without support vectors (linear mode) is not supported yet")
    c = len(vectors_per_class)
    if len(labels) != c:
        ctx.fail(f"{c} classes of support vectors but {len(labels)} class labels")
    n_sv = int(sum(vectors_per_class))
    sv = np.asarray(support_vectors or [], np.float32)
    coef = np.asarray(coefficients or [], np.float64)
    if n_sv == 0 or sv.size % n_sv or coef.size != (c - 1) * n_sv:
        ctx.fail("support_vectors / coefficients do not match vectors_per_class")
    coef = coef.reshape(c - 1, n_sv)
    start = np.concatenate([[0], np.cumsum(vectors_per_class)]).astype(int)
    pairs = [(i, j) for i in range(c - 1) for j in range(i + 1, c)]
    rho = np.asarray(rho or [0.0] * len(pairs), np.float64)
    if len(rho) != len(pairs):
        ctx.fail(f"rho has {len(rho)} values, {len(pairs)} class pairs need one each")
    w = np.zeros((n_sv, len(pairs)), np.float64)
    vote_i = np.zeros((len(pairs), c), np.float32)
    vote_j = np.zeros((len(pairs), c), np.float32)
    for p, (i, j) in enumerate(pairs):
        si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
        w[si, p] = coef[j - 1, si]
        w[sj, p] = coef[i, sj]
        vote_i[p, i] = 1
        vote_j[p, j] = 1
    x = _rows(ctx, X)
    k = _kernel(ctx, x, sv.reshape(n_sv, -1), kernel_type, kernel_params)
    s = ctx.tmp("decision")
    ctx.line(f"{s} = ({k}.double() @ {ctx.weight(w, 'pair_coef', False)} + "
             f"{ctx.weight(rho, 'rho', False)}).float()")
    lab = ctx.weight(np.asarray(labels, np.int64), "classlabels")
    pos = ctx.tmp("wins")
    ctx.line(f"{pos} = ({s} > 0).float()")
    votes = f"{pos} @ {ctx.weight(vote_i, 'vote_first')} + (1 - {pos}) @ " \
            f"{ctx.weight(vote_j, 'vote_second')}"
    if prob_a:  # probabilities by pairwise coupling; the label still comes from the votes
        if len(prob_a) != len(pairs) or len(prob_b or []) != len(pairs):
            ctx.fail(f"prob_a / prob_b need one value per class pair ({len(pairs)})")
        probs = f"{ctx.helper('_svm_probabilities')}({s}, " \
                f"{ctx.weight(np.asarray(prob_a, np.float32), 'prob_a', False)}, " \
                f"{ctx.weight(np.asarray(prob_b, np.float32), 'prob_b', False)}, {c})"
        return f"{lab}[torch.argmax({votes}, dim=1)]", _post(ctx, probs, post_transform, c)
    if c == 2:  # one classifier: label by its sign, scores [-s, s] (onnxruntime's layout)
        label = f"{lab}[({s}[:, 0] <= 0).long()]"
        if post_transform == "NONE":
            return label, f"torch.cat([-{s}, {s}], dim=1)"
        p = _post(ctx, s, post_transform, 2)
        return label, f"torch.cat([1 - {p}, {p}], dim=1)"
    return f"{lab}[torch.argmax({votes}, dim=1)]", _post(ctx, s, post_transform, len(pairs))
