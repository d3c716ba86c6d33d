"""A forest of CART regression trees grown level by level, sharing work between trees.

`CartsSurrogate`'s default builder. For every tree it grows the tree a default
`sklearn.tree.DecisionTreeRegressor` grows on that tree's gene subset (squared error; the best
split over every gene of the subset; threshold halfway between the two neighbouring values
present in the node, computed as sklearn does; grown until a node is pure, holds one row, or
no gene of the subset varies in it; leaf value = mean target), but all trees at once:

* a node is a set of training rows. Trees reach the same row sets over and over (every tree
  starts from all rows; trees on genes {1, 2} and {1, 2, 5} often make the same first
  splits), so the best split per gene of a row set is searched once per distinct set and
  shared by every node, of any tree, that holds it. With 180 NAS-Bench-201 cells, 2,000
  trees hold ~210,000 internal nodes but only ~3,300 distinct row sets; with 46 ternary genes
  ~330,000 and ~96,000;
* the search needs no sort: the genes are integer codes with few values, so the rows and
  target sum left of every cut "gene <= value" are one sparse (set x row) by dense
  (row x cut) product, and sklearn's proxy improvement follows for every cut at once;
* each node then takes the best gene of its tree's subset.

Why hand-written rather than sklearn's trees: sklearn grows one tree per call (~0.4 ms of
Python set-up, then a sort per node and gene), so the paper's 5,000 trees per fit and 11 fits
per adaptive-switching iteration take one to two minutes on two cores; sklearn has no forest
with a gene subset per tree and all rows (``RandomForestRegressor`` draws genes per split)
and cannot share split searches between trees.

The one difference from sklearn: ties. Several genes of a subset often split a node equally
well (in small nodes of integer encodings, two genes separate the same rows). sklearn keeps
the split with the largest proxy as computed in floating point, the first in a per-node
random gene order among bit-equal ones. The rounding matters: sklearn takes
``sum_right = sum_total - sum_left``, so in a two-row node the two orientations of the same
partition (row a left or row b left) round differently, and every tree prefers the same
one. Here the proxies are computed with the same arithmetic (``sum_left`` summed directly,
``sum_right`` and ``n_right`` by subtraction from the set's totals), ties are bit-equal
proxies, and among them the choice is uniform, by a hash of the seed, the tree, the node's
path and the gene (independent of how the trees are grouped over threads). Where sklearn's
sums depend on its row shuffle (nodes of more rows, accumulated in sorted order) the rounding
differs, so a near-tie may go the other way. Without ties the trees are sklearn's. Treating
proxies within 1e-12 as tied instead moved NAS-Bench-201 ensembles far from sklearn's (one
cell's prediction 53 instead of 90 over 300 trees on all genes, against 0.8 at most with
bit-equality), and cut the cross-validated tau by ~0.005-0.012; the fit quality of the two
builders is compared by ``benchmarks/surrogate_cost.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.utils.parallel import Parallel, delayed

MAX_VALUES = 64  # more distinct values in a gene: the per-value histograms stop paying off
_CHUNK = 1 << 12  # frontier rows scored at once (bounds the (rows, features) score matrix)
_SIDES = np.array([1, 2], dtype=np.uint64)  # left and right child, in the path hash
_SETS = 1 << 11  # row sets searched at once (keeps the (cuts, sets) arrays in cache)


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
        # one column per cut "value code <= c" of each gene (c below its largest value): set
        # statistics left of every cut are one sparse (set x row) by dense (row x cut) product
        self.width = width = np.array([len(v) - 1 for v in self.values])
        self.cut_feature = np.repeat(np.arange(self.d), width)
        self.start = np.concatenate([[0], np.cumsum(width)[:-1]])
        self.cut_k = np.arange(int(width.sum())) - self.start[self.cut_feature]
        below = (self.codes[:, self.cut_feature] <= self.cut_k).astype(np.float64)
        below = np.hstack([below, np.ones((self.n, 1))])  # last: every row, for the totals
        self.columns = np.hstack([below, below * y[:, None]])
        self.split_features = np.flatnonzero(width > 0)  # a constant gene never splits
        self.same_width = len(set(width[self.split_features].tolist())) <= 1
        self.first_cut = self.start[self.split_features]
        self.cut_index = np.arange(len(self.cut_k))[:, None]
        self.cut_block = np.searchsorted(self.first_cut, self.cut_index[:, 0], side="right") - 1

    def stats(
        self, rows: np.ndarray, ptr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows and target sum left of every cut (``(K, n_cuts)``), and in all, per set.

        The totals come from the same product as the left sums, so a cut with every row on
        its left has a left sum bit-equal to the total (the product adds exact zeros for the
        rows it leaves out).
        """
        member = csr_matrix((np.ones(len(rows)), rows, ptr), shape=(len(ptr) - 1, self.n))
        both = np.asarray(member @ self.columns)
        c = len(self.cut_k)
        return both[:, :c], both[:, c + 1 : 2 * c + 1], both[:, c], both[:, 2 * c + 1]

    def best_splits(
        self, n_left: np.ndarray, s_left: np.ndarray, n_tot: np.ndarray, s_tot: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per set and gene: best proxy improvement (-inf: no split) and its cut.

        The proxy is sklearn's ``MSE.proxy_impurity_improvement``,
        ``sum_left**2 / n_left + sum_right**2 / n_right``, maximised over the cuts just above
        a value present in the set with rows on both sides (a tie goes to the lowest cut, as
        in sklearn's ascending scan).
        """
        # cuts along axis 0 (the sets along the contiguous axis 1) keep every step a
        # vectorised pass over contiguous rows, the per-gene reductions included
        nl, sl = np.ascontiguousarray(n_left.T), np.ascontiguousarray(s_left.T)
        n_cut, k = nl.shape
        nr = n_tot - nl
        sr = s_tot - sl  # exactly 0 when every row is left of the cut (see `stats`)
        with np.errstate(divide="ignore", invalid="ignore"):
            proxy = sl * sl / nl + sr * sr / nr
        # a cut with no row on one side is 0 / 0: nan, never a split. A cut just above a value
        # absent from the set repeats the cut below it, with the same proxy: the first wins.
        proxy[np.isnan(proxy)] = -np.inf
        p_best = np.full((self.d, k), -np.inf)
        k_best = np.zeros((self.d, k), dtype=np.intp)
        if not n_cut:
            return p_best.T, k_best.T
        genes = self.split_features
        if self.same_width:  # every gene has the same number of cuts: a plain reshape
            # a loop over the few cuts of a gene: `np.argmax` along a middle axis copies
            blocks = proxy.reshape(len(genes), -1, k)
            best = blocks[:, 0].copy()
            first = np.zeros(best.shape, dtype=np.intp)
            for c in range(1, blocks.shape[1]):
                better = blocks[:, c] > best  # strictly: the lowest cut wins a tie
                np.maximum(best, blocks[:, c], out=best)
                first[better] = c
            p_best[genes] = best
            k_best[genes] = first
        else:
            starts = self.first_cut
            best = np.maximum.reduceat(proxy, starts, axis=0)
            at = np.where(proxy == best[self.cut_block], self.cut_index, n_cut)
            first = np.minimum.reduceat(at, starts, axis=0)
            p_best[genes] = best
            k_best[genes] = np.minimum(first, n_cut - 1) - starts[:, None]
        return p_best.T, k_best.T

    def threshold(
        self, j: np.ndarray, k: np.ndarray, n_left: np.ndarray, sets: np.ndarray, n_tot: np.ndarray
    ) -> np.ndarray:
        """The threshold sklearn puts between value ``k`` of gene ``j`` and the next one present.

        ``n_left[sets]`` are the split sets' rows left of every cut, ``n_tot`` their sizes.
        """
        m = np.arange(self.vmax)
        width = self.width[j][:, None]
        col = np.minimum(self.start[j][:, None] + m, max(len(self.cut_k) - 1, 0))
        cum = np.where(m < width, n_left[sets[:, None], col], n_tot[:, None])
        here = np.take_along_axis(cum, k[:, None], axis=1)
        nxt = np.argmax((m > k[:, None]) & (cum > here), axis=1)
        lo = self.vals[j, k].astype(np.float64)
        hi = self.vals[j, nxt].astype(np.float64)
        thr = lo / 2.0 + hi / 2.0  # sklearn: feature_values[p-1] / 2.0 + feature_values[p] / 2.0
        return np.where((thr == hi) | ~np.isfinite(thr), lo, thr)


def grow_forest(
    X: np.ndarray, y: np.ndarray, subsets: np.ndarray, seed: int, n_jobs: int = 1
) -> Forest:
    """Grow one tree per row of ``subsets`` (``(n_trees, d)`` boolean feature masks) on all rows.

    Ties between equally good splits are broken uniformly at random by a hash of ``seed``,
    the tree, the node's path from the root and the gene, so the forest does not depend on
    ``n_jobs``: the trees are grown in ``n_jobs`` contiguous groups, one thread each (numpy
    releases the GIL in its loops; the groups share less work, so one is faster on one core).
    """
    data = _Data(X, y)
    n_trees = len(subsets)
    jobs = max(1, min(n_trees, _effective_jobs(n_jobs)))
    bounds = np.linspace(0, n_trees, jobs + 1).astype(int)
    groups = [np.arange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if jobs == 1:
        parts = [_grow(data, subsets, groups[0], seed)]
    else:
        parts = Parallel(n_jobs=jobs, prefer="threads")(
            delayed(_grow)(data, subsets, g, seed) for g in groups
        )
    offset = np.cumsum([0] + [len(p.value) for p in parts[:-1]])
    return Forest(
        feature=np.concatenate([p.feature for p in parts]),
        threshold=np.concatenate([p.threshold for p in parts]),
        children=np.concatenate([p.children + o for p, o in zip(parts, offset, strict=True)]),
        value=np.concatenate([p.value for p in parts]),
        roots=np.concatenate([p.roots + o for p, o in zip(parts, offset, strict=True)]),
        depth=max(p.depth for p in parts),
    )


def _effective_jobs(n_jobs: int) -> int:
    return (os.cpu_count() or 1) + 1 + n_jobs if n_jobs < 0 else n_jobs


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit function of ``x`` (uint64, wraps)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _grow(data: _Data, subsets: np.ndarray, trees: np.ndarray, seed: int) -> Forest:
    """The trees ``trees`` (rows of ``subsets``), level by level; node ids local to the group."""
    n_trees = len(trees)
    # the distinct row sets of the current level (CSR: ``rows``, offsets ``ptr``), and the
    # frontier: tree, row set and path hash of each node of this level
    rows, ptr = np.arange(data.n), np.array([0, data.n])
    f_tree, f_set = trees, np.zeros(n_trees, dtype=np.intp)
    f_path = _mix(trees.astype(np.uint64) ^ _mix(np.array([seed], dtype=np.uint64)))
    gene_key = _mix(np.arange(1, data.d + 1, dtype=np.uint64))
    feature, threshold, children, value = [], [], [], []
    base, depth = 0, 0
    while True:
        sizes = np.diff(ptr)
        yr = data.y[rows]
        totals = np.add.reduceat(yr, ptr[:-1])
        pure = np.minimum.reduceat(yr, ptr[:-1]) == np.maximum.reduceat(yr, ptr[:-1])
        # only sets that can split are searched (most deep sets hold one row), and only the
        # nodes holding them choose a split: the others are leaves
        live = np.flatnonzero((sizes > 1) & ~pure)
        slot = np.full(len(sizes), -1, dtype=np.intp)
        slot[live] = np.arange(live.size)
        n_front = f_tree.size
        choice = np.full(n_front, -1, dtype=np.intp)
        if live.size:
            n_left, s_left, n_all, s_all = data.stats(*_gather(rows, ptr, live))
            p_best = np.empty((live.size, data.d))
            k_best = np.empty((live.size, data.d), dtype=np.intp)
            for lo in range(0, live.size, _SETS):  # cache-sized blocks: ~3x faster passes
                b = slice(lo, lo + _SETS)
                p_best[b], k_best[b] = data.best_splits(n_left[b], s_left[b], n_all[b], s_all[b])
            cand = np.flatnonzero(slot[f_set] >= 0)
            for lo in range(0, cand.size, _CHUNK):
                # each node's choice: the best gene of its tree's subset, random among ties
                at = cand[lo : lo + _CHUNK]
                score = np.where(subsets[f_tree[at]], p_best[slot[f_set[at]]], -np.inf)
                best = score.max(axis=1)
                tied = score == best[:, None]  # bit-equal: see the module's note on ties
                pick = np.argmax(tied, axis=1)
                many = np.flatnonzero((np.count_nonzero(tied, axis=1) > 1) & np.isfinite(best))
                if many.size:  # uniform among the ties: the largest hash of node and gene
                    draw = _mix(f_path[at[many], None] ^ gene_key)
                    pick[many] = np.argmax(np.where(tied[many], draw, 0), axis=1)
                choice[at] = np.where(np.isfinite(best), pick, -1)
        internal = np.flatnonzero(choice >= 0)
        ids = base + np.arange(n_front)
        kids = np.stack([ids, ids], axis=1)  # a leaf is its own child
        kids[internal, 0] = base + n_front + 2 * np.arange(internal.size)
        kids[internal, 1] = kids[internal, 0] + 1
        j = choice[internal]
        u = slot[f_set[internal]]
        k = k_best[u, j] if internal.size else j
        # the distinct splits (live set, gene, cut) of this level
        first, which = _unique(((u * data.d + j) * data.vmax + k).astype(np.int64))
        su, sj, sk = u[first], j[first], k[first]
        thr = np.full(n_front, np.inf)
        feat = np.zeros(n_front, dtype=np.intp)
        if internal.size:
            thr[internal] = data.threshold(sj, sk, n_left, su, sizes[live[su]])[which]
            feat[internal] = j
        feature.append(feat)
        threshold.append(thr)
        children.append(kids)
        value.append((totals / sizes)[f_set])
        base += n_front
        if not internal.size:
            break
        depth += 1
        # the child row sets: split s makes sets 2s (left) and 2s + 1 (right), each keeping
        # its parent's row order (a linear counting sort by child)
        mem, mptr = _gather(rows, ptr, live[su])
        seg = _segments(mptr)
        go_left = data.codes[mem, sj[seg]] <= sk[seg]
        right = ~go_left
        cseg = 2 * seg + right
        cptr = np.concatenate([[0], np.cumsum(np.bincount(cseg, minlength=2 * len(su)))])
        n_l, n_r = np.cumsum(go_left), np.cumsum(right)
        start = mptr[:-1]
        before_l = np.concatenate([[0], n_l])[start][seg]
        before_r = np.concatenate([[0], n_r])[start][seg]
        rank = np.where(go_left, n_l - 1 - before_l, n_r - 1 - before_r)
        crows = np.empty_like(mem)
        crows[cptr[cseg] + rank] = mem
        # identical row sets reached by different splits are searched once
        rep, cset = _dedupe_sets(crows, cptr, data.n)
        rows, ptr = _gather(crows, cptr, rep)
        f_tree = np.repeat(f_tree[internal], 2)
        f_path = _mix(np.repeat(f_path[internal], 2) + np.tile(_SIDES, internal.size))
        f_set = np.stack([cset[2 * which], cset[2 * which + 1]], axis=1).reshape(-1)
    return Forest(
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        children=np.concatenate(children),
        value=np.concatenate(value),
        roots=np.arange(n_trees),  # the first level holds the roots, in order
        depth=depth,
    )


def _unique(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One index per distinct value of ``key`` and each element's distinct-value number.

    `numpy.unique` with ``return_index`` sorts stably (mergesort); any representative will do
    here, so an unstable sort, several times faster on the ~10^5 keys of a level, is used.
    """
    if not key.size:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    order = np.argsort(key)
    sk = key[order]
    new = np.concatenate([[True], sk[1:] != sk[:-1]])
    group = np.cumsum(new) - 1
    inverse = np.empty(key.size, dtype=np.intp)
    inverse[order] = group
    return order[new], inverse


def _dedupe_sets(rows: np.ndarray, ptr: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`_unique` over the row sets of a CSR layout, by a 64-bit hash checked by a second one.

    A set's hash is the sum (mod 2**64) of fixed random keys of its rows. Two different sets
    share both hashes and the size with probability ~2**-128; a clash on the first hash alone
    (~10**-9 per fit) is caught by the check and raises rather than merging two sets.
    """
    # fixed keys: the hash only names sets, it never changes which model is grown
    keys = np.random.default_rng(12345).integers(0, 2**63, size=(n, 2), dtype=np.uint64)
    h = np.add.reduceat(keys[rows], ptr[:-1], axis=0)
    rep, inverse = _unique(h[:, 0].view(np.int64))
    same = (h[rep[inverse], 1] == h[:, 1]) & (np.diff(ptr)[rep[inverse]] == np.diff(ptr))
    if not same.all():
        raise RuntimeError("carts: row-set hash collision; refit with builder='sklearn'")
    return rep, inverse
