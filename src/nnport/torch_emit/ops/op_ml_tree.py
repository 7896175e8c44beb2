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

from ..emitter import Arg, Ctx, register

ML = "ai.onnx.ml"
GEMM_MAX_DEPTH = 3
_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6, "LEAF": 7}
_POST5 = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}
_AGG5 = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}


class _Forest:
    """All trees in flat node tables (numpy, one row per node, global index); a leaf's
    children are itself, its values are rows of ``values`` / ``has``."""

    def __init__(self, n_targets: int, feature, threshold, mode, mtt, true_next, false_next,
                 roots):
        self.k = n_targets
        self.feature = np.asarray(feature, np.int64)
        self.threshold = np.asarray(threshold, np.float64)
        self.mode = np.asarray(mode, np.int64)
        self.missing_true = np.asarray(mtt, bool)
        self.true_next = np.asarray(true_next, np.int64)
        self.false_next = np.asarray(false_next, np.int64)
        self.roots = [int(r) for r in roots]
        n = len(self.mode)
        self.values = np.zeros((n, n_targets), np.float64)
        self.has = np.zeros((n, n_targets), bool)
        self.members: list[list[float]] = []
        self.member_idx = np.zeros(n, np.int64)
        leaf = self.mode == 7
        self.true_next[leaf] = np.nonzero(leaf)[0]
        self.false_next[leaf] = np.nonzero(leaf)[0]

    def add_weights(self, ctx: Ctx, nodes, targets, weights) -> None:
        nodes, targets = np.asarray(nodes, np.int64), np.asarray(targets, np.int64)
        if targets.size and (targets.min() < 0 or targets.max() >= self.k):
            ctx.fail(f"a weight's target/class id is out of range (0..{self.k - 1})")
        np.add.at(self.values, (nodes, targets), np.asarray(weights, np.float64))
        self.has[nodes, targets] = True

    def is_leaf(self, i: int) -> bool:
        return self.mode[i] == 7

    def depth(self, ctx: Ctx) -> int:
        """Levels of internal nodes on the longest root-to-leaf path (all trees at once)."""
        level = np.asarray(self.roots, np.int64)
        for d in range(4097):
            inner = level[self.mode[level] != 7]
            if inner.size == 0:
                return d
            level = np.unique(np.concatenate([self.true_next[inner], self.false_next[inner]]))
        ctx.fail("a tree is deeper than 4096 levels (a cycle?)")

    def subtree_leaves(self, i: int) -> list[int]:
        out, stack = [], [i]
        while stack:
            j = stack.pop()
            if self.is_leaf(j):
                out.append(j)
            else:
                stack += [int(self.false_next[j]), int(self.true_next[j])]
        return out


def _legacy_forest(ctx: Ctx, n_targets, treeids, nodeids, featureids, values, modes, truenodeids,
                   falsenodeids, mtt, w_treeids, w_nodeids, w_ids, w_weights) -> _Forest:
    if not nodeids or treeids is None:
        ctx.fail("the ensemble has no nodes")
    n = len(nodeids)
    for name, arr in (("nodes_treeids", treeids), ("nodes_featureids", featureids),
                      ("nodes_modes", modes), ("nodes_truenodeids", truenodeids),
                      ("nodes_falsenodeids", falsenodeids), ("nodes_values", values)):
        if arr is None or len(arr) != n:
            ctx.fail(f"{name} must have one entry per node ({n})")
    uniq, inv = np.unique(np.asarray(modes, dtype=object).astype(str), return_inverse=True)
    codes = []
    for u in uniq:
        if _MODES.get(u) is None or _MODES[u] == 6:
            ctx.fail(f"node mode {u!r} is not supported")
        codes.append(_MODES[u])
    mode = np.asarray(codes, np.int64)[inv]
    trees = np.asarray(treeids, np.int64)
    ids = np.asarray(nodeids, np.int64)
    span = int(max(ids.max(), np.max(truenodeids), np.max(falsenodeids))) + 1
    keys = trees * span + ids
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    if np.any(sorted_keys[1:] == sorted_keys[:-1]):
        ctx.fail("two nodes have the same (tree id, node id)")

    def find(k_tree, k_node, what):
        k = np.asarray(k_tree, np.int64) * span + np.asarray(k_node, np.int64)
        pos = np.searchsorted(sorted_keys, k)
        pos = np.minimum(pos, len(sorted_keys) - 1)
        bad = sorted_keys[pos] != k
        if np.any(bad):
            ctx.fail(f"{what} refers to a node that does not exist "
                     f"(tree {np.asarray(k_tree).reshape(-1)[np.argmax(bad)]})")
        return order[pos]

    inner = mode != 7
    true_next = np.arange(n)
    false_next = np.arange(n)
    true_next[inner] = find(trees[inner], np.asarray(truenodeids)[inner], "a true branch")
    false_next[inner] = find(trees[inner], np.asarray(falsenodeids)[inner], "a false branch")
    pointed = np.zeros(n, bool)
    pointed[true_next[inner]] = True
    pointed[false_next[inner]] = True
    tree_order = list(dict.fromkeys(trees.tolist()))
    roots = {}
    for j in np.nonzero(~pointed)[0]:
        roots.setdefault(int(trees[j]), int(j))
    if len(roots) != len(tree_order):
        ctx.fail("a tree has no root (every node has a parent)")
    m = np.asarray(mtt if mtt else [0] * n, bool)
    if m.size != n:
        m = np.resize(m, n)
    f = _Forest(n_targets, featureids, values, mode, m, true_next, false_next,
                [roots[t] for t in tree_order])
    if w_treeids:
        f.add_weights(ctx, find(w_treeids, w_nodeids, "a weight"), w_ids, w_weights)
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
    modes = sorted(set(np.unique(f.mode[f.mode != 7]).tolist()))
    single = modes[0] if len(modes) == 1 and modes[0] != 6 else (0 if not modes else -1)
    depth = f.depth(ctx)
    n_trees = len(f.roots)
    need_has = aggregate in ("MIN", "MAX")
    any_mtt = bool(np.any(f.missing_true & (f.mode != 7)))
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
                    stack += [int(f.false_next[j]), int(f.true_next[j])]
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
                vals[t, p] = f.values[leaf]
                has[t, p] = f.has[leaf]
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
        vals = f.values.astype(fdt)
        has = f.has
        midx = f.member_idx
        members, member_idx = _members(ctx, f, midx if has_members else None, fdt)
        leaf = ctx.tmp("leaf")
        ctx.line(
            f"{leaf} = {name('_tree_traverse')}({x}, "
            f"{ctx.weight(np.asarray(f.roots, np.int64), 'tree_roots')}, "
            f"{ctx.weight(f.feature, 'tree_feature')}, "
            f"{ctx.weight(f.threshold.astype(fdt), 'tree_threshold', False)}, "
            f"{ctx.weight(f.true_next, 'tree_true_next')}, "
            f"{ctx.weight(f.false_next, 'tree_false_next')}, "
            f"{ctx.weight(f.missing_true, 'tree_missing_true') if any_mtt else None}, "
            f"{ctx.weight(f.mode, 'tree_mode') if single < 0 else None}, "
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
    lt = np.asarray(leaf_targetids if leaf_targetids else [0] * len(lw), np.int64)
    mtt = np.asarray(nodes_missing_value_tracks_true or [0] * n, bool)
    if np.any((modes < 0) | (modes > 6)):
        ctx.fail(f"node mode {int(modes[(modes < 0) | (modes > 6)][0])} is not defined")
    for name, arr in (("nodes_featureids", nodes_featureids), ("nodes_truenodeids",
                      nodes_truenodeids), ("nodes_falsenodeids", nodes_falsenodeids),
                      ("nodes_trueleafs", nodes_trueleafs), ("nodes_falseleafs", nodes_falseleafs)):
        if arr is None or len(arr) != n:
            ctx.fail(f"{name} must have one entry per node ({n})")
    if len(lt) != len(lw) or len(mtt) != n:
        ctx.fail("leaf_targetids / nodes_missing_value_tracks_true have the wrong length")
    total = n + len(lw)  # interior nodes first, then one node per leaf
    nexts = []
    for ids, leafs in ((nodes_truenodeids, nodes_trueleafs),
                       (nodes_falsenodeids, nodes_falseleafs)):
        c = np.asarray(ids, np.int64) + np.where(np.asarray(leafs, bool), n, 0)
        if np.any((c < 0) | (c >= total)):
            ctx.fail("a node points outside the tree tables")
        nexts.append(np.concatenate([c, np.zeros(len(lw), np.int64)]))
    f = _Forest(k, np.concatenate([np.asarray(nodes_featureids, np.int64),
                                   np.zeros(len(lw), np.int64)]),
                np.concatenate([splits.astype(np.float64), np.zeros(len(lw))]),
                np.concatenate([modes, np.full(len(lw), 7)]),
                np.concatenate([mtt, np.zeros(len(lw), bool)]), nexts[0], nexts[1],
                tree_roots)
    f.add_weights(ctx, n + np.arange(len(lw)), lt, lw.astype(np.float64))
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
    agg = _AGG5.get(int(aggregate_function))
    post = _POST5.get(int(post_transform))
    if agg is None or post is None:
        ctx.fail("aggregate_function / post_transform out of range")
    scores = _emit_forest(ctx, X, f, agg)
    out_dt = ctx.dtype_src(ctx.out_dtype(0) or ir.DataType.FLOAT)
    if post != "NONE" and (k >= 2 or post == "PROBIT"):
        return f"{ctx.helper('_ml_post')}({scores}, {post!r}).to({out_dt})"
    return f"{scores}.to({out_dt})"
