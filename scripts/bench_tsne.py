"""embedviz's t-SNE side by side with openTSNE (Barnes-Hut and FFT) and scikit-learn.

Every run happens in its own fresh Python process (this script re-invoked with
``--child``), on the same data and settings: the N most frequent GloVe 6B 50-d word
vectors, perplexity 30, 1,000 iterations of which 250 with early exaggeration 12, PCA
initialisation, Euclidean metric, each library's "auto" learning rate, and the same
number of threads (``n_jobs`` plus NUMBA_NUM_THREADS / OMP_NUM_THREADS and the BLAS
thread variables). Everything else is each library's default (openTSNE keeps momentum
0.8 in both phases, scikit-learn and embedviz use 0.5 then 0.8).

The parent then measures every final embedding the same way (see ``_bench_common``):
exact KL divergence against one reference P (exact neighbours, computed independently of
all methods), 10-NN preservation and trustworthiness, and prints a table, the ratios
"embedviz / peer" and the targets of issue 2.

Usage::

    python scripts/bench_tsne.py --quick                # check the harness (N=1,000, minutes)
    python scripts/bench_tsne.py --out results.json --cold-start   # BENCHMARKS.md's full run:
        # 2D N=5k/20k/70k, 3D N=5k/20k, 1 repeat; openTSNE-BH and scikit-learn skipped
        # above 20k (--slow-max-n); then embedviz with an empty and a filled numba cache
    python scripts/bench_tsne.py --cold-only            # only the cold/warm start
    python scripts/bench_tsne.py --report results.json  # print a saved run again (markdown)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bench_common as common  # noqa: E402

METHODS = ("embedviz", "opentsne-bh", "opentsne-fft", "sklearn")
SLOW = ("opentsne-bh", "sklearn")  # skipped above --slow-max-n
THREAD_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


_EMBEDVIZ_LAZY = (
    "sklearn.utils",
    "sklearn.decomposition",
    "embedviz.tsne._threads",
    "embedviz.tsne.affinity",
    "embedviz.tsne.objective",
    "embedviz.tsne.optimizer",
    "embedviz.tsne.callbacks",
)


# -- the child: one run of one method -----------------------------------------------------


def _run_embedviz(X, spec):
    import contextlib
    import importlib

    t = time.perf_counter()
    from embedviz import TSNE
    from embedviz.tsne import prefer_workqueue

    prefer_workqueue()
    # the modules TSNE.fit imports lazily: imported here, as the peers' are at import time,
    # so that no method's timed fit pays Python imports (numba's cache load stays in fit)
    for name in _EMBEDVIZ_LAZY:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    t_import = time.perf_counter() - t
    est = TSNE(
        n_components=spec["dims"],
        perplexity=spec["perplexity"],
        max_iter=spec["max_iter"],
        stop_lying_iter=spec["stop_lying_iter"],
        early_exaggeration=spec["exaggeration"],
        learning_rate="auto",
        init="pca",
        metric="euclidean",
        n_jobs=spec["threads"],
        random_state=spec["seed"],
    )
    fits, fit_cpu = [], []
    for _ in range(spec.get("fits", 1)):  # cold start: a second fit in the same process
        t0, c0 = time.perf_counter(), common.cpu_seconds()
        est.fit(X)
        fits.append(time.perf_counter() - t0)
        fit_cpu.append(common.cpu_seconds() - c0)
    tm = est.timings_
    return est.embedding_, {
        "import_s": t_import,
        "neighbors_s": tm["neighbors"],
        "affinities_s": tm["affinities"],
        "nn_aff_s": tm["neighbors"] + tm["affinities"],
        "optimize_s": tm["optimize"],
        "total_s": fits[0],
        "fit_cpu_s": fit_cpu[0],
        "fits_s": fits,
        "fits_cpu_s": fit_cpu,
        "kl_own": float(est.kl_divergence_),
        "n_iter": int(est.n_iter_),
        "learning_rate": float(est.learning_rate_),
    }


def _run_opentsne(X, spec, gradient):
    t = time.perf_counter()
    import openTSNE
    from openTSNE import affinity

    t_import = time.perf_counter() - t
    stop, total_iter = spec["stop_lying_iter"], spec["max_iter"]
    tsne = openTSNE.TSNE(
        n_components=spec["dims"],
        perplexity=spec["perplexity"],
        learning_rate="auto",
        early_exaggeration_iter=stop,
        early_exaggeration=spec["exaggeration"],
        n_iter=total_iter - stop,
        initialization="pca",
        metric="euclidean",
        n_jobs=spec["threads"],
        negative_gradient_method=gradient,
        random_state=spec["seed"],
    )
    t0, c0 = time.perf_counter(), common.cpu_seconds()
    aff = affinity.PerplexityBasedNN(
        X,
        perplexity=spec["perplexity"],
        metric="euclidean",
        n_jobs=spec["threads"],
        random_state=spec["seed"],
    )
    t1 = time.perf_counter()
    emb = tsne.prepare_initial(X, affinities=aff)  # PCA initialisation, as TSNE.fit does
    t2 = time.perf_counter()
    emb.optimize(
        n_iter=stop,
        exaggeration=spec["exaggeration"],
        momentum=tsne.initial_momentum,
        inplace=True,
    )
    emb.optimize(n_iter=total_iter - stop, momentum=tsne.final_momentum, inplace=True)
    t3, c3 = time.perf_counter(), common.cpu_seconds()
    return emb, {
        "import_s": t_import,
        "nn_aff_s": t1 - t0,
        "init_s": t2 - t1,
        "optimize_s": t3 - t2,
        "total_s": t3 - t0,
        "fit_cpu_s": c3 - c0,
        "kl_own": float(emb.kl_divergence),
        "n_iter": total_iter,
        "learning_rate": "auto (N/12, then N)",
    }


def _run_sklearn(X, spec):
    import contextlib
    import io
    import re

    t = time.perf_counter()
    from sklearn.manifold import TSNE

    t_import = time.perf_counter() - t
    est = TSNE(
        n_components=spec["dims"],
        perplexity=spec["perplexity"],
        early_exaggeration=spec["exaggeration"],
        learning_rate="auto",
        max_iter=spec["max_iter"],
        n_iter_without_progress=spec["max_iter"],  # run all iterations, like the others
        min_grad_norm=0.0,
        init="pca",
        method="barnes_hut",
        angle=0.5,
        n_jobs=spec["threads"],
        random_state=spec["seed"],
        verbose=1,
    )
    if spec["stop_lying_iter"] != est._EXPLORATION_MAX_ITER:  # --quick only
        est._EXPLORATION_MAX_ITER = spec["stop_lying_iter"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        t0, c0 = time.perf_counter(), common.cpu_seconds()
        Y = est.fit_transform(X)
        total = time.perf_counter() - t0
        fit_cpu = common.cpu_seconds() - c0
    log = out.getvalue()
    pattern = r"(?:Indexed|Computed neighbors for|Computed conditional probabilities)"
    nn_aff = sum(float(s) for s in re.findall(pattern + r".*? in ([0-9.]+)s", log))
    return Y, {
        "import_s": t_import,
        "nn_aff_s": nn_aff,
        "optimize_s": total - nn_aff,  # includes the PCA initialisation
        "total_s": total,
        "fit_cpu_s": fit_cpu,
        "kl_own": float(est.kl_divergence_),
        "n_iter": int(est.n_iter_),
        "learning_rate": float(est.learning_rate_),
    }


def child(spec_path: str) -> None:
    """Run one method once, as described by the JSON file, and write its result beside it."""
    import numpy as np

    spec = json.loads(Path(spec_path).read_text())
    cpu0 = common.cpu_seconds()
    X = common.load_data(spec["n"])
    rss_data = common.peak_rss_mib()
    if spec.get("count_cache"):  # cold start: does importing embedviz compile anything?
        t = time.perf_counter()
        import embedviz  # noqa: F401

        spec["compiled_after_import"] = _compiled_after_import()
        spec["import_embedviz_s"] = time.perf_counter() - t  # embedviz + t-SNE + kernels
        spec["cache_files_after_import"] = _count_files(os.environ["NUMBA_CACHE_DIR"])
        spec["heavy_modules_after_import"] = sorted(
            m for m in ("bokeh", "torch") if m in sys.modules
        )
    load0 = common.loadavg()
    method = spec["method"]
    if method == "embedviz":
        Y, res = _run_embedviz(X, spec)
    elif method in ("opentsne-bh", "opentsne-fft"):
        Y, res = _run_opentsne(X, spec, method.split("-")[1])
    elif method == "sklearn":
        Y, res = _run_sklearn(X, spec)
    else:
        raise SystemExit(f"unknown method {method!r}")
    res.update(
        peak_rss_mib=common.peak_rss_mib(),
        peak_source="VmHWM",
        rss_after_data_mib=rss_data,
        cpu_s=common.cpu_seconds() - cpu0,
        loadavg_before=load0,
        loadavg_after=common.loadavg(),
    )
    for key in (
        "import_embedviz_s",
        "compiled_after_import",
        "cache_files_after_import",
        "heavy_modules_after_import",
    ):
        if key in spec:
            res[key] = spec[key]
    if spec.get("count_cache"):
        res["cache_files_after_fit"] = _count_files(os.environ["NUMBA_CACHE_DIR"])
    out = Path(spec_path).parent
    np.save(out / "embedding.npy", np.asarray(Y, dtype=np.float64))
    (out / "result.json").write_text(json.dumps(res))


def _compiled_after_import() -> int:
    """Import embedviz's t-SNE modules and kernels; count the numba signatures compiled."""
    import importlib
    import pkgutil

    import embedviz.kernels

    names = ["embedviz.tsne.estimator", "embedviz.tsne.objective", "embedviz.tsne.affinity"]
    names += [f"embedviz.kernels.{m.name}" for m in pkgutil.iter_modules(embedviz.kernels.__path__)]
    compiled = 0
    for name in names:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if hasattr(obj, "py_func") and hasattr(obj, "signatures"):  # a numba dispatcher
                compiled += len(obj.signatures)
    return compiled


def _count_files(directory) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))


# -- the parent ---------------------------------------------------------------------------


def spawn(spec: dict, threads: int, timeout: float, env_extra=None) -> dict:
    """Run ``spec`` in a fresh process; return its result dict (or an "error" entry)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bench-tsne-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ)
        env.update({var: str(threads) for var in THREAD_VARS})
        env.update(env_extra or {})
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout)[-1500:]
            return {"error": f"exit {proc.returncode}: {tail}"}
        res = json.loads((Path(tmp) / "result.json").read_text())
        res["process_wall_s"] = wall
        res["embedding"] = np.load(Path(tmp) / "embedding.npy")
        return res


def run_benchmark(args) -> dict:
    import numpy as np

    settings = {
        "perplexity": common.PERPLEXITY,
        "max_iter": args.max_iter,
        "stop_lying_iter": args.stop_lying_iter,
        "exaggeration": 12.0,
        "threads": args.threads,
        "seed": args.seed,
    }
    results = {
        "machine": common.machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": settings,
        "kl_method": "exact KL(P||Q) over all pairs against one reference P "
        "(exact brute-force neighbours, k=90, own bisection), same for every method",
        "sources_before": common.source_state(),
        "runs": [],
    }
    if "embedviz" in args.methods and (args.n or args.n3d) and not args.no_warmup:
        for dims in args.dims:  # fill the numba cache so the timed runs are warm
            spec = dict(settings, n=1000, dims=dims, method="embedviz", max_iter=60)
            spec["stop_lying_iter"] = 30
            res = spawn(spec, args.threads, args.timeout)
            print(f"warm-up embedviz {dims}D: {res.get('error') or 'ok'}", flush=True)
    configs = [(dims, n) for dims in args.dims for n in (args.n if dims == 2 else args.n3d)]
    # cheapest first (3D costs the peers about 4x 2D), so a run cut short has the most pairs
    configs.sort(key=lambda c: (c[1] * (4 if c[0] == 3 else 1), c[0]))
    for dims, n in configs:
        X = common.load_data(n)
        ref_idx, _, P = common.reference(n, X, args.cache_dir)
        for method in args.methods:
            if method.startswith("opentsne-fft") and dims != 2:
                continue  # FFT interpolation exists for 1D and 2D only
            if method in SLOW and args.slow_max_n and n > args.slow_max_n:
                print(f"skip {method} {dims}D N={n} (> --slow-max-n)", flush=True)
                continue
            for rep in range(args.repeats):
                spec = dict(settings, n=n, dims=dims, method=method)
                res = spawn(spec, args.threads, args.timeout)
                row = {"method": method, "n": n, "dims": dims, "repeat": rep}
                Y = res.pop("embedding", None)
                row.update(res)
                if Y is not None:
                    t = time.perf_counter()
                    row["kl"] = common.exact_kl(P, Y)
                    row["knn10"] = common.knn_preservation(ref_idx, Y)
                    row["trust"] = common.trustworthiness(X, Y)
                    row["eval_s"] = time.perf_counter() - t
                results["runs"].append(row)
                _print_row(row)
                if args.out:
                    _save(results, args.out)
        del X, P
    results["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    results["sources_after"] = common.source_state()
    if args.out:
        _save(results, args.out)
    del np
    return results


def run_cold_start(args, results: dict) -> None:
    """embedviz with an empty numba cache, then warm (the same cache dir, now filled)."""
    settings = dict(results["settings"], n=args.cold_n, dims=2, method="embedviz", fits=2)
    settings["count_cache"] = True
    cold = {}
    with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
        for label in ("cold", "warm"):
            res = spawn(settings, args.threads, args.timeout, {"NUMBA_CACHE_DIR": cache})
            res.pop("embedding", None)
            cold[label] = res
            print(
                f"{label}: import {res.get('import_embedviz_s', float('nan')):.2f} s, "
                f"first fit {res.get('fits_s', [float('nan')])[0]:.2f} s, "
                f"second fit {res.get('fits_s', [0, float('nan')])[-1]:.2f} s "
                f"{res.get('error', '')}",
                flush=True,
            )
    results["cold_start"] = dict(cold, n=args.cold_n)
    if args.out:
        _save(results, args.out)


def _print_row(row):
    if "error" in row:
        print(f"{row['dims']}D N={row['n']:>6} {row['method']:<13} ERROR {row['error']}")
        return
    print(
        f"{row['dims']}D N={row['n']:>6} {row['method']:<13} nn+aff {row['nn_aff_s']:7.2f} s  "
        f"opt {row['optimize_s']:7.2f} s  total {row['total_s']:7.2f} s  KL {row['kl']:.4f}  "
        f"10-NN {row['knn10']:.4f}  trust {row['trust']:.4f}  peak {row['peak_rss_mib']:6.0f} MiB"
        f"  load {row['loadavg_before']:.1f}",
        flush=True,
    )


def _save(results, path):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[5000, 20000, 70000])
    p.add_argument(
        "--n3d",
        type=int,
        nargs="+",
        help="N for 3D (default: the values of --n up to 20,000)",
    )
    p.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--stop-lying-iter", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--slow-max-n",
        type=int,
        default=20000,
        help="skip openTSNE-BH and scikit-learn above this N (they take >= 6 min at 70k); "
        "0 runs them everywhere",
    )
    p.add_argument("--quick", action="store_true", help="N=1000, 250 iterations: a harness check")
    p.add_argument("--cold-start", action="store_true", help="also run the cold/warm start test")
    p.add_argument("--cold-only", action="store_true", help="only the cold/warm start test")
    p.add_argument("--cold-n", type=int, default=5000)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--timeout", type=float, default=1800.0, help="per child process, seconds")
    p.add_argument("--out", type=Path, help="write all results as JSON here")
    p.add_argument("--report", type=Path, help="print the table of a saved JSON and exit")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "embedviz-bench-cache",
        help="where the reference neighbours/affinities are cached",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and args.n == p.get_default("n"):
        args.n = [1000]
    if args.n3d is None:
        args.n3d = [n for n in args.n if n <= 20000]
    if args.quick:
        args.max_iter, args.stop_lying_iter = 250, 100  # scikit-learn needs >= 250
        if args.cold_n == p.get_default("cold_n"):
            args.cold_n = 1000
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    if args.report:
        common.print_report(json.loads(args.report.read_text()))
        return 0
    if args.cold_only:
        args.n, args.n3d, args.cold_start = [], [], True
    results = run_benchmark(args)
    if args.cold_start:
        run_cold_start(args, results)
    print()
    common.print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
