"""Helpers for ai.onnx.ml (classical ML): score post-transforms, tree ensembles as tensor
computations, SVM kernels.  Semantics follow the ONNX-ML spec and onnxruntime's kernels (which
define the binary-classification details the spec leaves open)."""
import math
from typing import Optional

import torch

__all__ = ["_ml_post", "_ml_binary_scores", "_tree_traverse", "_tree_gemm", "_tree_cond",
           "_tree_aggregate", "_svm_kernel", "_svm_probabilities"]


def _ml_post(scores: torch.Tensor, post: str) -> torch.Tensor:
    """POST_TRANSFORM on (N, K) scores: NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT."""
    if post == "LOGISTIC":
        return torch.sigmoid(scores)
    if post == "SOFTMAX":
        return torch.softmax(scores, dim=-1)
    if post == "SOFTMAX_ZERO":  # exactly-zero scores stay (almost) zero
        vmax = scores.max(dim=-1, keepdim=True).values
        nonzero = scores.abs() > 1e-7
        e = torch.where(nonzero, torch.exp(scores - vmax), scores * torch.exp(-vmax))
        return e / torch.where(nonzero, e, torch.zeros_like(e)).sum(dim=-1, keepdim=True)
    if post == "PROBIT":
        return math.sqrt(2.0) * torch.special.erfinv(2 * scores - 1)
    return scores


def _ml_binary_scores(s: torch.Tensor, post: str, mode: int) -> torch.Tensor:
    """One score column -> two columns, as onnxruntime writes a binary classifier's scores.
    ``mode``: 0/1 all weights positive ([1 - s, s]); 2 mixed weights, positive class wins;
    3 mixed weights, negative class wins (per row: ``mode`` may be a tensor of 2/3)."""
    if post == "PROBIT":
        return _ml_post(s, post)
    if mode in (0, 1):
        return torch.cat([1 - s, s], dim=-1)
    if post == "LOGISTIC":
        return torch.cat([torch.sigmoid(-s), torch.sigmoid(s)], dim=-1)
    return torch.cat([-s, s], dim=-1)


def _tree_cond(v: torch.Tensor, t: torch.Tensor, mode: Optional[torch.Tensor], single: int,
               members: Optional[torch.Tensor], member_idx: Optional[torch.Tensor]
               ) -> torch.Tensor:
    """The branch condition of tree nodes: ``v`` feature values, ``t`` thresholds.  ``single``
    >= 0: every node uses that mode (0 LEQ, 1 LT, 2 GTE, 3 GT, 4 EQ, 5 NEQ); else ``mode``
    holds one per node, and 6 (MEMBER) tests ``v`` against ``members[member_idx]``."""
    if single == 0:
        return v <= t
    if single == 1:
        return v < t
    if single == 2:
        return v >= t
    if single == 3:
        return v > t
    if single == 4:
        return v == t
    if single == 5:
        return v != t
    assert mode is not None
    c = torch.where(mode == 0, v <= t, v < t)
    c = torch.where(mode == 2, v >= t, c)
    c = torch.where(mode == 3, v > t, c)
    c = torch.where(mode == 4, v == t, c)
    c = torch.where(mode == 5, v != t, c)
    if members is not None and member_idx is not None:
        hit = (v.unsqueeze(-1) == members[member_idx]).any(dim=-1)
        c = torch.where(mode == 6, hit, c)
    return c


def _tree_traverse(x: torch.Tensor, roots: torch.Tensor, feature: torch.Tensor,
                   threshold: torch.Tensor, true_next: torch.Tensor, false_next: torch.Tensor,
                   missing_true: Optional[torch.Tensor], mode: Optional[torch.Tensor],
                   single: int, members: Optional[torch.Tensor],
                   member_idx: Optional[torch.Tensor], depth: int) -> torch.Tensor:
    """Batched traversal of every tree at once, one gather per level: (N, F) -> (N, T) the
    index of the leaf each tree reaches.  Leaves point to themselves."""
    n = x.shape[0]
    idx = roots.unsqueeze(0).expand(n, roots.shape[0])
    for _ in range(depth):
        v = torch.gather(x, 1, feature[idx])
        cond = _tree_cond(v, threshold[idx], None if mode is None else mode[idx], single,
                          members, None if member_idx is None else member_idx[idx])
        if missing_true is not None:
            cond = cond | (torch.isnan(v) & missing_true[idx])
        idx = torch.where(cond, true_next[idx], false_next[idx])
    return idx


def _tree_gemm(x: torch.Tensor, feature: torch.Tensor, threshold: torch.Tensor,
               missing_true: Optional[torch.Tensor], mode: Optional[torch.Tensor], single: int,
               members: Optional[torch.Tensor], member_idx: Optional[torch.Tensor],
               paths: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Shallow trees as matrix products (Hummingbird's GEMM strategy): every internal node's
    condition at once (N, T, I), then ``paths`` (T, I, L: +1 the leaf is under the node's true
    branch, -1 under its false branch) picks the leaf whose path count matches ``counts``
    (T, L).  Returns the one-hot leaf choice (N, T, L)."""
    n = x.shape[0]
    t, i = feature.shape
    v = x[:, feature.reshape(-1)].reshape(n, t, i)
    cond = _tree_cond(v, threshold, mode, single, members, member_idx)
    if missing_true is not None:
        cond = cond | (torch.isnan(v) & missing_true)
    hits = torch.einsum("nti,til->ntl", cond.to(paths.dtype), paths)
    return (hits == counts).to(paths.dtype)


def _tree_aggregate(per_tree: torch.Tensor, has: Optional[torch.Tensor], how: str,
                    n_trees: int) -> torch.Tensor:
    """(N, T, K) leaf values -> (N, K): SUM, AVERAGE, MIN or MAX over trees.  ``has`` (N, T, K)
    marks the values a leaf defines (MIN/MAX skip the rest; none at all gives 0)."""
    if how == "SUM":
        return per_tree.sum(dim=1)
    if how == "AVERAGE":
        return per_tree.sum(dim=1) / n_trees
    assert has is not None
    fill = math.inf if how == "MIN" else -math.inf
    vals = torch.where(has, per_tree, torch.full_like(per_tree, fill))
    out = vals.min(dim=1).values if how == "MIN" else vals.max(dim=1).values
    return torch.where(has.any(dim=1), out, torch.zeros_like(out))


def _svm_kernel(x: torch.Tensor, sv: torch.Tensor, kernel: str, gamma: float, coef0: float,
                degree: float) -> torch.Tensor:
    """(N, F) x (S, F) -> (N, S) kernel values: LINEAR, POLY, RBF, SIGMOID."""
    if kernel == "RBF":
        d = x.unsqueeze(1) - sv.unsqueeze(0)
        return torch.exp(-gamma * (d * d).sum(dim=-1))
    dot = x @ sv.T
    if kernel == "POLY":
        return torch.pow(gamma * dot + coef0, degree)
    if kernel == "SIGMOID":
        return torch.tanh(gamma * dot + coef0)
    return dot



def _svm_probabilities(decision: torch.Tensor, prob_a: torch.Tensor, prob_b: torch.Tensor,
                       k: int) -> torch.Tensor:
    """libsvm's class probabilities from the (N, k(k-1)/2) pairwise decision values: Platt's
    sigmoid per pair, then pairwise coupling (Wu, Lin and Weng's method 2), the iteration
    onnxruntime runs: at most 100 rounds, each row stopping once its error is below
    0.005 / k (rows that stop keep their values, so the whole batch runs 100 rounds)."""
    n = decision.shape[0]
    pair = 1.0 - torch.sigmoid(decision * prob_a + prob_b)
    pair = pair.clamp(1e-7, 1 - 1e-7)
    r = torch.zeros(n, k, k, dtype=decision.dtype, device=decision.device)
    index = 0
    for i in range(k - 1):
        for j in range(i + 1, k):
            r[:, i, j] = pair[:, index]
            r[:, j, i] = 1 - pair[:, index]
            index += 1
    rt = r.transpose(1, 2)
    q = -(rt * r)  # q[i, j] = -r[j, i] r[i, j]
    diag = (rt * rt).sum(dim=2) - torch.diagonal(rt * rt, dim1=1, dim2=2)
    q = q - torch.diag_embed(torch.diagonal(q, dim1=1, dim2=2)) + torch.diag_embed(diag)
    p = torch.full((n, k), 1.0 / k, dtype=decision.dtype, device=decision.device)
    done = torch.zeros(n, dtype=torch.bool, device=decision.device)
    eps = 0.005 / k
    for _ in range(100):
        qp = torch.bmm(q, p.unsqueeze(2)).squeeze(2)
        pqp = (p * qp).sum(dim=1)
        err = (qp - pqp.unsqueeze(1)).abs().max(dim=1).values
        done = done | (err < eps)
        for i in range(k):
            d = (-qp[:, i] + pqp) / q[:, i, i]
            d = torch.where(done, torch.zeros_like(d), d)
            p_i = p[:, i] + d
            p = torch.cat([p[:, :i], p_i.unsqueeze(1), p[:, i + 1:]], dim=1)
            pqp = (pqp + d * (d * q[:, i, i] + 2 * qp[:, i])) / (1 + d) / (1 + d)
            qp = (qp + d.unsqueeze(1) * q[:, i, :]) / (1 + d).unsqueeze(1)
            p = p / (1 + d).unsqueeze(1)
    return p


_tree_traverse._nnport_deps = ["_tree_cond"]
_tree_gemm._nnport_deps = ["_tree_cond"]
