"""ai.onnx.ml tree ensembles: TreeEnsembleClassifier, TreeEnsembleRegressor (1, 3) and
TreeEnsemble (5), as tensor computations that run batched on any device.

The trees are packed into tables at conversion time.  Strategy by depth (Hummingbird's two):
- depth <= ``GEMM_MAX_DEPTH``: every internal node's condition at once, then a (node x leaf)
  path matrix picks each tree's leaf with one einsum;
- deeper: a batched traversal, one gather per level for all trees and rows at once (leaves
  point to themselves, so ``depth`` steps reach every leaf).
Per-tree leaf values (N, T, K) are then aggregated (SUM / AVERAGE / MIN / MAX), base values
added and the post transform applied; classifiers follow onnxruntime for the binary cases the
spec leaves open.  Labels are int64 (string class labels are not supported: torch holds no
strings).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..codegen import Arg, Ctx, register

ML = "ai.onnx.ml"
GEMM_MAX_DEPTH = 3
_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6, "LEAF": 7}
_POST5 = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}
_AGG5 = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}


class _Forest:
    """All trees in flat node tables (global node index), leaves as nodes with values."""

    def __init__(self, n_targets: int):
        self.k = n_targets
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.mode: list[int] = []
        self.true_next: list[int] = []
        self.false_next: list[int] = []
        self.missing_true: list[bool] = []
        self.members: list[list[float]] = []
        self.member_idx: list[int] = []
        self.values: dict[int, dict[int, float]] = {}  # leaf node -> target -> weight
        self.roots: list[int] = []

    def add_node(self, feature=0, threshold=0.0, mode=7, mtt=False) -> int:
        self.feature.append(int(feature))
        self.threshold.append(float(threshold))
        self.mode.append(int(mode))
        self.true_next.append(len(self.feature) - 1)
        self.false_next.append(len(self.feature) - 1)
        self.missing_true.append(bool(mtt))
        self.member_idx.append(0)
        return len(self.feature) - 1

    def add_weight(self, leaf: int, target: int, w: float) -> None:
        d = self.values.setdefault(leaf, {})
        d[int(target)] = d.get(int(target), 0.0) + float(w)

    def is_leaf(self, i: int) -> bool:
        return self.mode[i] == 7

    def depth(self, ctx: Ctx) -> int:
        best = 0
        for root in self.roots:
            stack = [(root, 0)]
            while stack:
                i, d = stack.pop()
                if d > 4096:
                    ctx.fail("a tree is deeper than 4096 levels (a cycle?)")
                if self.is_leaf(i):
                    best = max(best, d)
                else:
                    stack.append((self.true_next[i], d + 1))
                    stack.append((self.false_next[i], d + 1))
        return best

    def subtree_leaves(self, i: int) -> list[int]:
        out, stack = [], [i]
        while stack:
            j = stack.pop()
            if self.is_leaf(j):
                out.append(j)
            else:
                stack += [self.false_next[j], self.true_next[j]]
        return out


def _legacy_forest(ctx: Ctx, n_targets, treeids, nodeids, featureids, values, modes, truenodeids,
                   falsenodeids, mtt, w_treeids, w_nodeids, w_ids, w_weights) -> _Forest:
    if not nodeids or treeids is None:
        ctx.fail("the ensemble has no nodes")
    f = _Forest(n_targets)
    n = len(nodeids)
    for name, arr in (("nodes_treeids", treeids), ("nodes_featureids", featureids),
                      ("nodes_modes", modes), ("nodes_truenodeids", truenodeids),
                      ("nodes_falsenodeids", falsenodeids)):
        if arr is None or len(arr) != n:
            ctx.fail(f"{name} must have one entry per node ({n})")
    if values is None or len(values) != n:
        ctx.fail(f"nodes_values must have one entry per node ({n})")
    mtt = list(mtt) if mtt else [0] * n
    where: dict[tuple[int, int], int] = {}
    for j in range(n):
        mode = _MODES.get(modes[j])
        if mode is None or mode == 6:
            ctx.fail(f"node mode {modes[j]!r} is not supported")
        where[(int(treeids[j]), int(nodeids[j]))] = f.add_node(featureids[j], values[j], mode,
                                                               mtt[j] if j < len(mtt) else 0)
    seen_trees = []
    for j in range(n):
        g = where[(int(treeids[j]), int(nodeids[j]))]
        if int(treeids[j]) not in seen_trees:
            seen_trees.append(int(treeids[j]))
        if not f.is_leaf(g):
            for attr, child in (("true_next", truenodeids[j]), ("false_next", falsenodeids[j])):
                c = where.get((int(treeids[j]), int(child)))
                if c is None:
                    ctx.fail(f"tree {treeids[j]} node {nodeids[j]} points to missing node {child}")
                getattr(f, attr)[g] = c
    # the root of each tree: the node no other node of that tree points to
    pointed = {c for i in range(len(f.mode)) if not f.is_leaf(i)
               for c in (f.true_next[i], f.false_next[i])}
    first = {}
    for j in range(n):
        g = where[(int(treeids[j]), int(nodeids[j]))]
        if g not in pointed:
            first.setdefault(int(treeids[j]), g)
    f.roots = [first[t] for t in seen_trees if t in first]
    if len(f.roots) != len(seen_trees):
        ctx.fail("a tree has no root (every node has a parent)")
    for t, nid, k, w in zip(w_treeids or [], w_nodeids or [], w_ids or [], w_weights or []):
        g = where.get((int(t), int(nid)))
        if g is None:
            ctx.fail(f"a weight refers to missing node {nid} of tree {t}")
        if not 0 <= int(k) < n_targets:
            ctx.fail(f"a weight's target/class id {k} is out of range (0..{n_targets - 1})")
        f.add_weight(g, k, w)
    return f


def _np_dtype(ctx: Ctx, X: Arg):
    return np.float64 if ctx.dtype(X) == ir.DataType.DOUBLE else np.float32


def _emit_forest(ctx: Ctx, X: Arg, f: _Forest, aggregate: str) -> str:
    """Code computing (N, K) aggregated scores (before base values); returns its name."""
    fdt = _np_dtype(ctx, X)
    tdt = "torch.float64" if fdt is np.float64 else "torch.float32"
    x = ctx.tmp("x")
    rank = ctx.rank(X)
    xe = f"{X}.unsqueeze(0)" if rank == 1 else str(X)
    ctx.line(f"{x} = {xe}.to({tdt})")
    modes = sorted({m for i, m in enumerate(f.mode) if not f.is_leaf(i)})
    single = modes[0] if len(modes) == 1 and modes[0] != 6 else (0 if not modes else -1)
    depth = f.depth(ctx)
    n_trees = len(f.roots)
    need_has = aggregate in ("MIN", "MAX")
    any_mtt = any(f.missing_true[i] for i in range(len(f.mode)) if not f.is_leaf(i))
    has_members = 6 in modes
    name = ctx.helper
    if depth <= GEMM_MAX_DEPTH:
        internals = [[] for _ in f.roots]
        leaves = [[] for _ in f.roots]
        for t, r in enumerate(f.roots):
            stack = [r]
            while stack:
                j = stack.pop()
                if f.is_leaf(j):
                    leaves[t].append(j)
                else:
                    internals[t].append(j)
                    stack += [f.false_next[j], f.true_next[j]]
        n_i = max(1, max(len(a) for a in internals))
        n_l = max(len(a) for a in leaves)
        feat = np.zeros((n_trees, n_i), np.int64)
        thr = np.zeros((n_trees, n_i), fdt)
        mode = np.zeros((n_trees, n_i), np.int64)
        mtt = np.zeros((n_trees, n_i), bool)
        midx = np.zeros((n_trees, n_i), np.int64)
        paths = np.zeros((n_trees, n_i, n_l), np.float32)
        counts = np.full((n_trees, n_l), -1.0, np.float32)
        vals = np.zeros((n_trees, n_l, f.k), fdt)
        has = np.zeros((n_trees, n_l, f.k), bool)
        for t in range(n_trees):
            pos = {j: p for p, j in enumerate(leaves[t])}
            counts[t, :len(leaves[t])] = 0
            for p, j in enumerate(internals[t]):
                feat[t, p], thr[t, p], mode[t, p] = f.feature[j], f.threshold[j], f.mode[j]
                mtt[t, p], midx[t, p] = f.missing_true[j], f.member_idx[j]
                for leaf in f.subtree_leaves(f.true_next[j]):
                    paths[t, p, pos[leaf]] = 1
                    counts[t, pos[leaf]] += 1
                for leaf in f.subtree_leaves(f.false_next[j]):
                    paths[t, p, pos[leaf]] = -1
            for leaf, p in pos.items():
                for k, w in f.values.get(leaf, {}).items():
                    vals[t, p, k] = w
                    has[t, p, k] = True
        members, member_idx = _members(ctx, f, midx if has_members else None, fdt)
        onehot = ctx.tmp("leaf")
        ctx.line(f"{onehot} = {name('_tree_gemm')}({x}, {ctx.weight(feat, 'tree_feature')}, "
                 f"{ctx.weight(thr, 'tree_threshold', False)}, "
                 f"{ctx.weight(mtt, 'tree_missing_true') if any_mtt else None}, "
                 f"{ctx.weight(mode, 'tree_mode') if single < 0 else None}, {single}, "
                 f"{members}, {member_idx}, {ctx.weight(paths, 'tree_paths', False)}, "
                 f"{ctx.weight(counts, 'tree_counts', False)})")
        per_tree = ctx.tmp("per_tree")
        ctx.line(f"{per_tree} = torch.einsum('ntl,tlk->ntk', {onehot}.to({tdt}), "
                 f"{ctx.weight(vals, 'tree_leaf_values', False)})")
        has_e = None
        if need_has:
            has_e = ctx.tmp("has")
            ctx.line(f"{has_e} = torch.einsum('ntl,tlk->ntk', {onehot}, "
                     f"{ctx.weight(has.astype(np.float32), 'tree_leaf_has', False)}) > 0")
    else:
        n = len(f.mode)
        vals = np.zeros((n, f.k), fdt)
        has = np.zeros((n, f.k), bool)
        for leaf, d in f.values.items():
            for k, w in d.items():
                vals[leaf, k] = w
                has[leaf, k] = True
        midx = np.asarray(f.member_idx, np.int64)
        members, member_idx = _members(ctx, f, midx if has_members else None, fdt)
        leaf = ctx.tmp("leaf")
        ctx.line(
            f"{leaf} = {name('_tree_traverse')}({x}, "
            f"{ctx.weight(np.asarray(f.roots, np.int64), 'tree_roots')}, "
            f"{ctx.weight(np.asarray(f.feature, np.int64), 'tree_feature')}, "
            f"{ctx.weight(np.asarray(f.threshold, fdt), 'tree_threshold', False)}, "
            f"{ctx.weight(np.asarray(f.true_next, np.int64), 'tree_true_next')}, "
            f"{ctx.weight(np.asarray(f.false_next, np.int64), 'tree_false_next')}, "
            f"{ctx.weight(np.asarray(f.missing_true, bool), 'tree_missing_true') if any_mtt else None}, "
            f"{ctx.weight(np.asarray(f.mode, np.int64), 'tree_mode') if single < 0 else None}, "
            f"{single}, {members}, {member_idx}, {depth})")
        per_tree = ctx.tmp("per_tree")
        ctx.line(f"{per_tree} = {ctx.weight(vals, 'tree_leaf_values', False)}[{leaf}]")
        has_e = None
        if need_has:
            has_e = ctx.tmp("has")
            ctx.line(f"{has_e} = {ctx.weight(has, 'tree_leaf_has')}[{leaf}]")
    scores = ctx.tmp("scores")
    ctx.line(f"{scores} = {name('_tree_aggregate')}({per_tree}, {has_e}, {aggregate!r}, "
             f"{n_trees})")
    return scores


def _members(ctx: Ctx, f: _Forest, midx, fdt):
    if midx is None:
        return None, None
    width = max(1, max(len(m) for m in f.members))
    table = np.full((len(f.members), width), np.nan, fdt)
    for i, m in enumerate(f.members):
        table[i, :len(m)] = m
    return (ctx.weight(table, "tree_members", False),
            ctx.weight(np.asarray(midx, np.int64), "tree_member_idx"))


def _floats(a, tensor=None):
    if tensor is not None:
        return [float(v) for v in np.asarray(tensor).reshape(-1)]
    return None if a is None else [float(v) for v in a]


# ---- TreeEnsembleRegressor ------------------------------------------------------------------
@register("TreeEnsembleRegressor", (1, 3), domain=ML)
def tree_ensemble_regressor(ctx: Ctx, X: Arg, *, aggregate_function="SUM", base_values=None,
                            base_values_as_tensor=None, n_targets=None, nodes_falsenodeids=None,
                            nodes_featureids=None, nodes_hitrates=None,
                            nodes_hitrates_as_tensor=None, nodes_missing_value_tracks_true=None,
                            nodes_modes=None, nodes_nodeids=None, nodes_treeids=None,
                            nodes_truenodeids=None, nodes_values=None,
                            nodes_values_as_tensor=None, post_transform="NONE", target_ids=None,
                            target_nodeids=None, target_treeids=None, target_weights=None,
                            target_weights_as_tensor=None):
    k = int(n_targets or 1)
    f = _legacy_forest(ctx, k, nodes_treeids, nodes_nodeids, nodes_featureids,
                       _floats(nodes_values, nodes_values_as_tensor), nodes_modes,
                       nodes_truenodeids, nodes_falsenodeids, nodes_missing_value_tracks_true,
                       target_treeids, target_nodeids, target_ids,
                       _floats(target_weights, target_weights_as_tensor))
    scores = _emit_forest(ctx, X, f, aggregate_function)
    return _regression_finalize(ctx, X, scores, k, _floats(base_values, base_values_as_tensor),
                                post_transform)


def _regression_finalize(ctx: Ctx, X: Arg, scores: str, k: int, base, post: str) -> str:
    fdt = np.float32  # the legacy ops' outputs are float
    if base:
        if len(base) == k:
            scores = f"{scores} + {ctx.weight(np.asarray(base, fdt), 'base_values', False)}"
        elif len(base) == 1 and k == 1:
            scores = f"{scores} + {ctx.lit(base[0], ir.DataType.FLOAT)}"
    if k >= 2 and post != "NONE":
        return f"{ctx.helper('_ml_post')}({scores}, {post!r}).float()"
    if k == 1 and post == "PROBIT":  # onnxruntime applies no other transform to one target
        return f"{ctx.helper('_ml_post')}({scores}, 'PROBIT').float()"
    return f"({scores}).float()"


# ---- TreeEnsembleClassifier -----------------------------------------------------------------
@register("TreeEnsembleClassifier", (1, 3), domain=ML)
def tree_ensemble_classifier(ctx: Ctx, X: Arg, *, base_values=None, base_values_as_tensor=None,
                             class_ids=None, class_nodeids=None, class_treeids=None,
                             class_weights=None, class_weights_as_tensor=None,
                             classlabels_int64s=None, classlabels_strings=None,
                             nodes_falsenodeids=None, nodes_featureids=None, nodes_hitrates=None,
                             nodes_hitrates_as_tensor=None,
                             nodes_missing_value_tracks_true=None, nodes_modes=None,
                             nodes_nodeids=None, nodes_treeids=None, nodes_truenodeids=None,
                             nodes_values=None, nodes_values_as_tensor=None,
                             post_transform="NONE"):
    if classlabels_strings:
        ctx.fail("string class labels are not supported (torch tensors hold no strings); "
                 "convert the model with integer labels")
    labels = [int(v) for v in (classlabels_int64s or [])]
    if not labels:
        ctx.fail("classlabels_int64s is empty")
    k = len(labels)
    weights = _floats(class_weights, class_weights_as_tensor) or []
    f = _legacy_forest(ctx, k, nodes_treeids, nodes_nodeids, nodes_featureids,
                       _floats(nodes_values, nodes_values_as_tensor), nodes_modes,
                       nodes_truenodeids, nodes_falsenodeids, nodes_missing_value_tracks_true,
                       class_treeids, class_nodeids, class_ids, weights)
    scores = _emit_forest(ctx, X, f, "SUM")
    base = _floats(base_values, base_values_as_tensor) or []
    used = sorted({int(c) for c in (class_ids or [])})
    return classifier_finalize(ctx, scores, labels, base, used,
                               all(w >= 0 for w in weights), post_transform)


def classifier_finalize(ctx: Ctx, scores: str, labels: list, base: list, used: list,
                        all_positive: bool, post: str):
    """Labels and probabilities from (N, K) summed scores, as onnxruntime's tree classifier
    writes them (``used``: the class ids that carry weights)."""
    k = len(labels)
    post_h = ctx.helper("_ml_post")
    lab = ctx.weight(np.asarray(labels, np.int64), "classlabels")
    if k > 2:
        s = scores
        if base:
            b = np.zeros(k, np.float32)
            b[:len(base)] = base[:k]
            s = f"{scores} + {ctx.weight(b, 'base_values', False)}"
        has = set(used) | set(range(min(len(base), k)))
        masked = s
        if len(has) < k:
            mask = np.asarray([i in has for i in range(k)])
            masked = f"torch.where({ctx.weight(mask, 'class_has_score')}, {s}, " \
                     f"torch.full_like({s}, -float('inf')))"
        label = f"{lab}[torch.argmax({masked}, dim=1)]"
        return label, f"{post_h}({s}, {post!r}).float()"
    if k == 1:
        ctx.fail("a classifier with a single class label is not supported")
    has1 = 1 in used
    binary_case = len(used) == 1
    two = ctx.tmp("scores")
    if len(base) == 2:
        if has1:
            ctx.line(f"{two} = {scores}[:, :1] + {ctx.lit(base[1], ir.DataType.FLOAT)}")
            ctx.line(f"{two} = torch.cat([-{two}, {two}], dim=1)")
        else:
            ctx.line(f"{two} = {scores} + {ctx.weight(np.asarray(base, np.float32), 'base_values', False)}")
        single = False
    else:
        if len(base) == 1:
            ctx.line(f"{two} = torch.cat([{scores}[:, :1] + "
                     f"{ctx.lit(base[0], ir.DataType.FLOAT)}, {scores}[:, 1:]], dim=1)")
        else:
            ctx.line(f"{two} = {scores}")
        single = not has1
        if single:
            ctx.line(f"{two} = {two}[:, :1]")
    pos = f"{two}[:, 1]" if not single else f"{two}[:, 0]"
    if binary_case:
        cut = "0.5" if all_positive else "0"
        label = f"{lab}[({pos} > {cut}).long()]"
    else:
        label = f"torch.where({pos} > 0, 1, 0).long()"
    if not single:
        return label, f"{post_h}({two}, {post!r}).float()"
    bh = ctx.helper("_ml_binary_scores")
    if binary_case:
        if all_positive:
            return label, f"{bh}({two}, {post!r}, 0).float()"
        # mixed weights: [-s, s] or (LOGISTIC) [sigmoid(-s), sigmoid(s)] either way
        return label, f"{bh}({two}, {post!r}, 2).float()"
    return label, f"{bh}({two}, {post!r}, 3).float()" if post == "LOGISTIC" else (
        label, f"torch.cat([{two}, -{two}], dim=1).float()")[1]


# ---- TreeEnsemble (ai.onnx.ml 5) ------------------------------------------------------------
@register("TreeEnsemble", 5, domain=ML)
def tree_ensemble(ctx: Ctx, X: Arg, *, aggregate_function=1, leaf_targetids=None,
                  leaf_weights=None, membership_values=None, n_targets=None,
                  nodes_falseleafs=None, nodes_falsenodeids=None, nodes_featureids=None,
                  nodes_hitrates=None, nodes_missing_value_tracks_true=None, nodes_modes=None,
                  nodes_splits=None, nodes_trueleafs=None, nodes_truenodeids=None,
                  post_transform=0, tree_roots=None):
    k = int(n_targets or 1)
    if nodes_splits is None or nodes_modes is None or tree_roots is None:
        ctx.fail("nodes_splits, nodes_modes and tree_roots are required")
    splits = np.asarray(nodes_splits).reshape(-1)
    modes = np.asarray(nodes_modes).reshape(-1).astype(np.int64)
    n = len(splits)
    lw = np.asarray(leaf_weights).reshape(-1) if leaf_weights is not None else np.zeros(0)
    lt = list(leaf_targetids or [0] * len(lw))
    mtt = list(nodes_missing_value_tracks_true or [0] * n)
    f = _Forest(k)
    for i in range(n):
        if not 0 <= modes[i] <= 6:
            ctx.fail(f"node {i}: mode {modes[i]} is not defined")
        f.add_node(nodes_featureids[i], float(splits[i]), modes[i], mtt[i])
    leaf0 = len(f.mode)
    for j in range(len(lw)):
        g = f.add_node()
        if not 0 <= int(lt[j]) < k:
            ctx.fail(f"leaf {j}: target {lt[j]} is out of range (0..{k - 1})")
        f.add_weight(g, lt[j], float(lw[j]))
    for i in range(n):
        for nxt, ids, leafs in ((f.true_next, nodes_truenodeids, nodes_trueleafs),
                                (f.false_next, nodes_falsenodeids, nodes_falseleafs)):
            c = int(ids[i])
            nxt[i] = leaf0 + c if leafs[i] else c
            if not 0 <= nxt[i] < len(f.mode):
                ctx.fail(f"node {i} points outside the tree tables")
    if 6 in modes:
        mv = np.asarray(membership_values, np.float64).reshape(-1)
        sets, cur = [], []
        for v in mv:
            if np.isnan(v):
                sets.append(cur)
                cur = []
            else:
                cur.append(float(v))
        if cur:
            sets.append(cur)
        member_nodes = [i for i in range(n) if modes[i] == 6]
        if len(sets) < len(member_nodes):
            ctx.fail("membership_values has fewer sets than BRANCH_MEMBER nodes")
        f.members = sets[:len(member_nodes)]
        for s, i in enumerate(member_nodes):
            f.member_idx[i] = s
    f.roots = [int(r) for r in tree_roots]
    agg = _AGG5.get(int(aggregate_function))
    post = _POST5.get(int(post_transform))
    if agg is None or post is None:
        ctx.fail("aggregate_function / post_transform out of range")
    scores = _emit_forest(ctx, X, f, agg)
    out_dt = ctx.dtype_src(ctx.out_dtype(0) or ir.DataType.FLOAT)
    if post != "NONE" and (k >= 2 or post == "PROBIT"):
        return f"{ctx.helper('_ml_post')}({scores}, {post!r}).to({out_dt})"
    return f"{scores}.to({out_dt})"
