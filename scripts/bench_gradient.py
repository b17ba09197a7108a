"""Time one t-SNE gradient evaluation: embedviz's Barnes-Hut against openTSNE's.

For each N and dimension: GloVe 6B 50-d vectors (most frequent words), P from
openTSNE's perplexity-30 affinities, and a real t-SNE layout (500 iterations of
plain gradient descent with embedviz's own gradient, 250 of them exaggerated) or a
PCA layout (``--layout pca``). On that layout it reports the time per evaluation
(median of ``--repeat``, without KL, as in most iterations) of embedviz (total and
its three phases: tree build, repulsion, attraction) and of openTSNE's Barnes-Hut
(quad tree, negative and positive gradient, as openTSNE's optimiser calls them),
both at theta 0.5, and the relative error of the repulsive force against the exact
one (on a random subset of points).

    python scripts/bench_gradient.py --sizes 5000 20000 --dims 2 3 --threads 2 [--cache DIR]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _glove import load_glove  # noqa: E402
from embedviz.kernels import gradient as kg  # noqa: E402
from embedviz.kernels import tree as kt  # noqa: E402

from embedviz.tsne._threads import numba_threads, prefer_workqueue  # noqa: E402
from embedviz.tsne.objective import GROUP_SIZE, LEAF_SIZE, BarnesHutGradient  # noqa: E402


def affinities(X, threads):
    from openTSNE.affinity import PerplexityBasedNN

    aff = PerplexityBasedNN(X, perplexity=30, n_jobs=threads, random_state=0, verbose=False)
    return aff.P.tocsr()


def tsne_layout(P, d, rng, iters=500):
    """A real t-SNE layout: gradient descent with momentum and gains (no callbacks)."""
    n = P.shape[0]
    Y = rng.normal(scale=1e-4, size=(n, d))
    objective = BarnesHutGradient(P, d)
    update = np.zeros_like(Y)
    gains = np.ones_like(Y)
    lr = max(n / 12.0, 50.0)
    for it in range(iters):
        exaggerated = it < 250
        grad, _ = objective(Y, 12.0 if exaggerated else 1.0)
        gains = np.where(np.sign(grad) != np.sign(update), gains + 0.2, gains * 0.8)
        np.clip(gains, 0.01, None, out=gains)
        update = (0.5 if exaggerated else 0.8) * update - lr * gains * grad
        Y += update
        Y -= Y.mean(axis=0)
    return Y


def exact_repulsion_rows(Y, rows, block=250):
    """Exact repulsive force on `rows`, normalised by the exact Z over all pairs."""
    force = np.empty((len(rows), Y.shape[1]))
    Z = 0.0
    chosen = np.zeros(len(Y), dtype=bool)
    chosen[rows] = True
    where = np.full(len(Y), -1)
    where[rows] = np.arange(len(rows))
    for s in range(0, len(Y), block):
        diff = Y[s : s + block, None, :] - Y[None, :, :]
        W = 1.0 / (1.0 + (diff**2).sum(-1))
        W[np.arange(len(W)), np.arange(s, s + len(W))] = 0.0
        Z += W.sum()
        sel = np.flatnonzero(chosen[s : s + block])
        force[where[s + sel]] = np.einsum("ij,ijk->ik", W[sel] ** 2, diff[sel])
    return force / Z


def ours_phases(objective, Y, repeat):
    """Median seconds of the three phases, with the adapter's own buffers."""
    o = objective
    phases = {"tree": [], "repulsion": [], "attraction": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        n_nodes, n_groups = kt.build_tree(
            Y, LEAF_SIZE, GROUP_SIZE, o._codes, o._perm, o._rank, o._Yt, *o._nodes,
            *o._groups, *o._work,
        )  # fmt: skip
        t1 = time.perf_counter()
        Z = kg.repulsion_bh(
            o._Yt, o._shape_tag, o.theta, *o._nodes, n_nodes, o._groups[0], o._groups[1],
            n_groups, kt.CODE_BITS[Y.shape[1]], o._R, o._z_part,
        )  # fmt: skip
        t2 = time.perf_counter()
        kg.attract_combine(
            Y, o._shape_tag, o._rank, o._R, Z, o._indptr, o._indices, o._data, o._row_blocks, 1.0,
            o._grad,
            o._kl_part, False,
        )  # fmt: skip
        t3 = time.perf_counter()
        phases["tree"].append(t1 - t0)
        phases["repulsion"].append(t2 - t1)
        phases["attraction"].append(t3 - t2)
    force = np.empty_like(Y)
    force[o._perm] = o._R.T / Z  # the repulsive force, back in Y's order
    return {k: statistics.median(v) for k, v in phases.items()}, force


def opentsne_call(P, Y, threads):
    """One gradient evaluation as openTSNE's optimiser makes it; returns the repulsion."""
    from openTSNE import _tsne
    from openTSNE.quad_tree import QuadTree

    grad = np.zeros_like(Y)
    tree = QuadTree(Y)
    _tsne.estimate_negative_gradient_bh(
        tree, Y, grad, theta=0.5, dof=1, num_threads=threads, pairwise_normalization=True
    )
    del tree
    neg = -grad.copy()  # the repulsive force, normalised by the sum of q
    _tsne.estimate_positive_gradient_nn(
        P.indices, P.indptr, P.data, Y, Y, grad, 1, num_threads=threads, should_eval_error=False
    )
    return neg


def compare(P, Y, repeat, threads):
    """Interleaved timings (so that the load of a shared machine hits both alike)."""
    objective = BarnesHutGradient(P, Y.shape[1])
    objective(Y)  # compile / warm
    opentsne_call(P, Y, threads)
    ours, theirs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        objective(Y)
        t1 = time.perf_counter()
        neg = opentsne_call(P, Y, threads)
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        theirs.append(t2 - t1)
    phases, force = ours_phases(objective, Y, repeat)
    return statistics.median(ours), phases, force, statistics.median(theirs), neg


def data(n, d, threads, layout, rng, cache):
    """GloVe P and a layout, read from / written to `cache` when given."""
    from scipy import sparse

    p_file = cache and Path(cache) / f"P{n}.npz"
    y_file = cache and Path(cache) / f"Y{n}_{d}_{layout}.npy"
    if p_file and p_file.exists():
        P = sparse.load_npz(p_file).tocsr()
    else:
        _, X = load_glove(n)
        P = affinities(np.asarray(X, dtype=np.float64), threads)
        if p_file:
            sparse.save_npz(p_file, P)
    if y_file and y_file.exists():
        return P, np.load(y_file)
    if layout == "pca":
        _, X = load_glove(n)
        Xc = X - X.mean(axis=0)
        Y = Xc @ np.linalg.svd(Xc, full_matrices=False)[2][:d].T
        Y = np.ascontiguousarray(Y / Y[:, 0].std() * 10, dtype=np.float64)
    else:
        Y = tsne_layout(P, d, rng)
    if y_file:
        np.save(y_file, Y)
    return P, Y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--layout", choices=["tsne", "pca"], default="tsne")
    ap.add_argument("--error-rows", type=int, default=2000)
    ap.add_argument("--cache", help="folder to keep P and the layouts in between runs")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"threads: {args.threads}, theta 0.5, layout: {args.layout}; times are medians")
    prefer_workqueue()
    with numba_threads(args.threads):
        for n in args.sizes:
            for d in args.dims:
                P, Y = data(n, d, args.threads, args.layout, rng, args.cache)
                ours, phases, force, theirs, neg = compare(P, Y, args.repeat, args.threads)
                rows = rng.choice(n, size=min(n, args.error_rows), replace=False)
                exact = exact_repulsion_rows(Y, rows)
                norm = np.linalg.norm(exact)
                err_ours = np.linalg.norm(force[rows] - exact) / norm
                err_theirs = np.linalg.norm(neg[rows] - exact) / norm
                print_row(n, d, ours, phases, theirs, err_ours, err_theirs, flush=True)
    return 0


def print_row(n, d, ours, phases, theirs, err_ours, err_theirs, flush=False):
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(
            f"{'N':>6} {'d':>2} | {'embedviz ms':>11} {'(tree':>6} {'rep':>6} {'attr)':>6} | "
            f"{'openTSNE ms':>11} | {'speed-up':>8} | {'err ours':>8} {'err oTSNE':>9}"
        )
    print(
        f"{n:>6} {d:>2} | {ours * 1e3:>11.2f} {phases['tree'] * 1e3:>6.2f} "
        f"{phases['repulsion'] * 1e3:>6.2f} {phases['attraction'] * 1e3:>6.2f} | "
        f"{theirs * 1e3:>11.2f} | {theirs / ours:>7.1f}x | {err_ours:>8.2%} {err_theirs:>9.2%}",
        flush=flush,
    )


if __name__ == "__main__":
    sys.exit(main())
