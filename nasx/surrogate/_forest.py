"""A forest of CART regression trees grown level by level, sharing work between trees.

`CartsSurrogate`'s default builder. It grows, for every tree, the tree a default
`sklearn.tree.DecisionTreeRegressor` grows on that tree's feature subset (squared error, the
best split over every feature of the subset, threshold halfway between the two neighbouring
values present in the node, grown until a node is pure, has one row, or no feature of the
subset varies in it; leaf value = mean target), but all trees at once:

* a node is a set of training rows. Trees reach the same row sets over and over (every tree
  starts from all rows; a tree on genes {1, 2} and one on {1, 2, 5} often make the same first
  splits), so the per-feature best split of a row set is computed once per distinct set and
  shared by every node, of any tree, that holds it. On 180 NAS-Bench-201 cells, 2,000 trees
  hold ~210,000 internal nodes but only ~3,300 distinct row sets; on 46 ternary genes ~96,000;
* the split search uses per-(feature, value) counts and target sums, which is exact because
  the genes take few distinct values (integer encodings): no sorting per node;
* each tree then picks, among the features of its subset, the best per-feature split.

Why hand-written rather than sklearn's trees: sklearn fits one tree per call (0.4 ms of Python
set-up alone, then a sort per node and feature), so the paper's 5,000 trees per fit, 11 fits
per adaptive-switching iteration, take about a minute on two cores; sklearn has no forest
whose trees use per-tree feature subsets with all rows (``RandomForestRegressor`` draws
features per split), and no way to share split searches between trees.

The one difference from sklearn: ties. When several features of a tree's subset give equally
good splits (common in small nodes of integer encodings: two genes that separate the same
rows), sklearn keeps the first in a per-node random feature order and, because its sums are
accumulated in a row order that depends on the tree's row shuffle, float rounding decides
near-ties too; its choice is thus arbitrary per tree. Here the choice among splits within a
relative ``TIE_RTOL`` of the best is uniformly random, drawn from the given generator. Tie-free
data (distinct improvements) gives sklearn's trees; the benchmark checks the fit quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE_RTOL = 1e-12  # proxy improvements this close are the same split quality (float rounding)
MAX_VALUES = 64  # more distinct values in a gene: the per-value histograms stop paying off
_CHUNK = 1 << 15  # frontier rows scored at once (bounds the (rows, features) score matrix)


@dataclass
class Forest:
    """Flat node arrays of all trees; leaves point to themselves, so walking past them is a no-op.

    Attributes:
        feature: split feature of each node (a column of the full ``X``; 0 at leaves).
        threshold: go left when ``float32(x) <= threshold`` (``inf`` at leaves), as sklearn.
        children: ``(n_nodes, 2)`` left and right child ids.
        value: mean training target of each node.
        roots: root node id of each tree.
        depth: the deepest leaf's depth.
    """

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int

    def predict_trees(self, X: np.ndarray) -> np.ndarray:
        """Per-tree predictions, shape ``(n_trees, m)``, walking all trees at once."""
        # sklearn compares the float32 input with float64 thresholds: same here
        Xf = np.asarray(X, dtype=np.float32).astype(np.float64)
        m, d = Xf.shape
        flat = Xf.reshape(-1)
        node = np.repeat(self.roots, m)
        offset = np.tile(np.arange(m) * d, len(self.roots))
        active = np.arange(node.size)
        for _ in range(self.depth):
            cur = node[active]
            right = flat[offset[active] + self.feature[cur]] > self.threshold[cur]
            nxt = self.children[cur, right.astype(np.intp)]
            node[active] = nxt
            keep = nxt != cur  # reached a leaf: drop it from the walk
            active = active[keep]
            if not active.size:
                break
        return self.value[node].reshape(len(self.roots), m)


def _segments(ptr: np.ndarray) -> np.ndarray:
    """Segment id of every element of a CSR layout with offsets ``ptr``."""
    return np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))


def _gather(rows: np.ndarray, ptr: np.ndarray, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The members of row sets ``sets`` (CSR ``rows``/``ptr``) as a new CSR layout."""
    sizes = ptr[sets + 1] - ptr[sets]
    new_ptr = np.concatenate([[0], np.cumsum(sizes)])
    starts = np.repeat(ptr[sets] - new_ptr[:-1], sizes)
    return rows[starts + np.arange(new_ptr[-1])], new_ptr


class _Data:
    """The training data as per-(feature, value) codes, and the split search over row sets."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        X32 = X.astype(np.float32)  # sklearn grows its trees on float32 features
        self.n, self.d = X32.shape
        self.values = [np.unique(X32[:, j]) for j in range(self.d)]
        self.vmax = max(len(v) for v in self.values)
        self.vals = np.full((self.d, self.vmax), np.inf, dtype=np.float32)
        for j, v in enumerate(self.values):
            self.vals[j, : len(v)] = v
        self.codes = np.stack(
            [np.searchsorted(v, X32[:, j]) for j, v in enumerate(self.values)], axis=1
        )
        self.y = y
        self.cell = np.arange(self.d) * self.vmax  # bin offset of each feature in a set's block

    def stats(self, rows: np.ndarray, ptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-set counts and target sums by feature and value, each ``(K, d, vmax)``."""
        k = len(ptr) - 1
        block = self.d * self.vmax
        idx = (_segments(ptr) * block)[:, None] + self.cell + self.codes[rows]
        size = k * block
        counts = np.bincount(idx.reshape(-1), minlength=size)
        w = np.repeat(self.y[rows], self.d)
        sums = np.bincount(idx.reshape(-1), weights=w, minlength=size)
        shape = (k, self.d, self.vmax)
        return counts.reshape(shape).astype(np.float64), sums.reshape(shape)

    def best_splits(
        self, counts: np.ndarray, sums: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per set and feature: best proxy improvement (-inf: no split) and its value code.

        The proxy is sklearn's ``MSE.proxy_impurity_improvement``:
        ``sum_left**2 / n_left + sum_right**2 / n_right``, maximised over the thresholds
        between values present in the set (the lowest threshold wins a tie, as sklearn's scan).
        Also returns the code of the next value present above each split (its threshold's
        right neighbour).
        """
        n_left = np.cumsum(counts, axis=2)
        s_left = np.cumsum(sums, axis=2)
        n_tot = n_left[:, :1, -1:]
        s_tot = s_left[:, :1, -1:]
        n_right = n_tot - n_left
        s_right = s_tot - s_left
        ok = (counts > 0) & (n_right > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            proxy = np.where(
                ok, s_left * s_left / n_left + s_right * s_right / n_right, -np.inf
            )
        k_best = np.argmax(proxy, axis=2)
        p_best = np.take_along_axis(proxy, k_best[..., None], axis=2)[..., 0]
        return p_best, k_best, counts

    def threshold(self, j: np.ndarray, k: np.ndarray, counts_row: np.ndarray) -> np.ndarray:
        """sklearn's threshold between value ``k`` and the next value present (``counts_row``)."""
        above = (np.arange(self.vmax) > k[:, None]) & (counts_row > 0)
        m = np.argmax(above, axis=1)
        lo = self.vals[j, k].astype(np.float64)
        hi = self.vals[j, m].astype(np.float64)
        thr = lo / 2.0 + hi / 2.0  # sklearn: feature_values[p-1] / 2.0 + feature_values[p] / 2.0
        return np.where((thr == hi) | ~np.isfinite(thr), lo, thr)


def grow_forest(
    X: np.ndarray, y: np.ndarray, subsets: np.ndarray, rng: np.random.Generator
) -> Forest:
    """Grow one tree per row of ``subsets`` (``(n_trees, d)`` boolean feature masks) on all rows.

    Ties between equally good splits are broken uniformly at random with ``rng``.
    """
    data = _Data(X, y)
    n_trees = len(subsets)
    # row sets of the current level, CSR; the frontier: (tree, set) of each node to decide
    rows, ptr = np.arange(data.n), np.array([0, data.n])
    f_tree, f_set = np.arange(n_trees), np.zeros(n_trees, dtype=np.intp)
    feature, threshold, children, value = [], [], [], []
    base, depth = 0, 0
    while f_tree.size:
        counts, sums = data.stats(rows, ptr)
        p_best, k_best, _ = data.best_splits(counts, sums)
        n_set = counts[:, 0].sum(axis=1)
        mean = sums[:, 0].sum(axis=1) / n_set
        yr = data.y[rows]
        pure = np.minimum.reduceat(yr, ptr[:-1]) == np.maximum.reduceat(yr, ptr[:-1])
        # each node's choice: the best feature of its tree's subset, random among ties
        n_front = f_tree.size
        choice = np.full(n_front, -1, dtype=np.intp)
        for lo in range(0, n_front, _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            score = np.where(subsets[f_tree[sl]], p_best[f_set[sl]], -np.inf)
            best = score.max(axis=1)
            tied = score >= best[:, None] - TIE_RTOL * np.abs(best[:, None])
            pick = np.argmax(tied, axis=1)
            many = np.flatnonzero((tied.sum(axis=1) > 1) & np.isfinite(best))
            if many.size:
                draw = np.where(tied[many], rng.random((many.size, data.d)), -1.0)
                pick[many] = np.argmax(draw, axis=1)
            split = np.isfinite(best) & ~pure[f_set[sl]]
            choice[sl] = np.where(split, pick, -1)
        internal = np.flatnonzero(choice >= 0)
        ids = base + np.arange(n_front)
        kids = np.stack([ids, ids], axis=1)
        kids[internal, 0] = base + n_front + 2 * np.arange(internal.size)
        kids[internal, 1] = kids[internal, 0] + 1
        j = choice[internal]
        u = f_set[internal]
        k = k_best[u, j]
        # the distinct splits (set, feature, value) of this level, then their child row sets
        key = (u * data.d + j) * data.vmax + k
        _, first, which = np.unique(key, return_index=True, return_inverse=True)
        su, sj, sk = u[first], j[first], k[first]
        thr_split = data.threshold(sj, sk, counts[su, sj])
        thr = np.full(n_front, np.inf)
        thr[internal] = thr_split[which]
        feat = np.zeros(n_front, dtype=np.intp)
        feat[internal] = j
        feature.append(feat)
        threshold.append(thr)
        children.append(kids)
        value.append(mean[f_set])
        base += n_front
        if not internal.size:
            break
        depth += 1
        mem, mptr = _gather(rows, ptr, su)
        seg = _segments(mptr)
        go_left = data.codes[mem, sj[seg]] <= sk[seg]
        # children of split s: left set s, right set S + s (a stable sort keeps row order)
        cseg = np.where(go_left, seg, seg + len(su))
        order = np.argsort(cseg, kind="stable")
        crows = mem[order]
        cptr = np.concatenate([[0], np.cumsum(np.bincount(cseg, minlength=2 * len(su)))])
        # identical row sets reached by different splits are searched once: dedupe by hash
        hashes = _set_hashes(crows, cptr, data.n)
        _, rep, cset = np.unique(hashes, axis=0, return_index=True, return_inverse=True)
        cset = cset.reshape(-1)
        rows, ptr = _gather(crows, cptr, rep)
        f_tree = np.repeat(f_tree[internal], 2)
        f_set = np.stack([cset[which], cset[which + len(su)]], axis=1).reshape(-1)
    return Forest(
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        children=np.concatenate(children),
        value=np.concatenate(value),
        roots=np.arange(n_trees),
        depth=depth,
    )


_HASH_KEYS: dict[int, np.ndarray] = {}


def _set_hashes(rows: np.ndarray, ptr: np.ndarray, n: int) -> np.ndarray:
    """Two independent 64-bit sums of fixed random keys per set (a collision needs both)."""
    keys = _HASH_KEYS.get(n)
    if keys is None:
        # fixed keys: the hash only names sets, it never changes which model is grown
        keys = np.random.default_rng(12345).integers(0, 2**63, size=(n, 2), dtype=np.uint64)
        _HASH_KEYS[n] = keys
    sums = np.add.reduceat(keys[rows], ptr[:-1], axis=0)
    sizes = np.diff(ptr).astype(np.uint64)[:, None]
    return np.hstack([sums, sizes])
