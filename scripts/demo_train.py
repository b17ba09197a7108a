"""A small real training run that records statistics, for the UI, the README and CI.

Trains an MLP on scikit-learn's digits (1,797 8x8 images, 10 classes) with a held-out
set evaluated every epoch, and records everything into a SQLite file (or sends it to a
running UI). Optionally adds a t-SNE session and a word2vec session to the same file.

Usage::

    python scripts/demo_train.py runs.db                   # about 10 s on a laptop CPU
    python scripts/demo_train.py runs.db --fault high-lr   # a run that diagnostics flag
    python scripts/demo_train.py runs.db --tsne --word2vec
    python scripts/demo_train.py --remote http://127.0.0.1:9000 --token T
    embedviz ui runs.db      # then open http://127.0.0.1:9000/train/overview
    embedviz check runs.db
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

import numpy as np


def train_mlp(storage, epochs: int, lr: float, session_id: str | None, seed: int) -> str:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from embedviz.stats.listener import StatsListener

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X / 16.0, y, test_size=0.25, random_state=seed, stratify=y
    )
    X_train, X_val = (torch.tensor(a, dtype=torch.float32) for a in (X_train, X_val))
    y_train, y_val = torch.tensor(y_train), torch.tensor(y_val)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.3)
    batch = 32
    config = {"n_classes": 10, "batch_size": batch, "epochs": epochs, "dataset": "digits"}
    with StatsListener(
        storage, model, optimizer, session_id=session_id, scheduler=scheduler, config=config
    ) as listener:
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(X_train), generator=generator)
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X_train[idx]), y_train[idx])
                loss.backward()
                optimizer.step()
                listener.step(loss.item(), batch_size=len(idx))
            scheduler.step()
            model.eval()
            with torch.no_grad():
                logits = model(X_val)
                val_loss = float(torch.nn.functional.cross_entropy(logits, y_val))
                accuracy = float((logits.argmax(1) == y_val).float().mean())
            listener.record_eval({"accuracy": accuracy, "val_loss": val_loss})
            logging.info("epoch %d: val_loss %.4f accuracy %.3f", epoch + 1, val_loss, accuracy)
    return listener.session_id


def run_tsne(storage) -> str:
    from sklearn.datasets import load_digits

    from embedviz import TSNE
    from embedviz.stats.tsne_stats import TSNEStats

    digits = load_digits()
    stats = TSNEStats(storage, config={"perplexity": 30.0, "dataset": "digits"},
                      labels=[str(t) for t in digits.target], snapshot_every=5)  # fmt: skip
    TSNE(perplexity=30.0, max_iter=750, random_state=0, callbacks=[stats]).fit(digits.data)
    stats.close()
    return stats.session_id


def run_word2vec(storage) -> str:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    from gensim.test.utils import datapath

    from embedviz.stats.word2vec import Word2VecStats

    words = ["government", "minister", "police", "Australia", "world", "people", "year"]
    stats = Word2VecStats(storage, words=words, config={"corpus": "gensim lee_background"})
    Word2Vec(LineSentence(datapath("lee_background.cor")), vector_size=50, min_count=3,
             epochs=10, compute_loss=True, workers=1, seed=1, callbacks=[stats])  # fmt: skip
    return stats.session_id


def _count(text: str) -> int:
    """``--epochs``: a whole number >= 1 (0 epochs would record an empty session)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _rate(text: str) -> float:
    """``--lr``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a finite number > 0, got {text!r} (for a run that diverges, use "
            "--fault high-lr)"
        )
    return value


def _seed(text: str) -> int:
    """``--seed``: what both torch and scikit-learn take, 0 to 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {2**32 - 1}, got {text!r}"
        )
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="?", default="runs.db", help="SQLite file (default runs.db)")
    parser.add_argument("--remote", help="send to a running `embedviz ui --enable-remote` instead")
    parser.add_argument("--token", help="bearer token for --remote")
    parser.add_argument("--epochs", type=_count, default=15, help="epochs (>= 1, default 15)")
    parser.add_argument(
        "--lr", type=_rate, default=0.05, help="SGD learning rate (> 0, default 0.05)"
    )
    parser.add_argument(
        "--fault",
        choices=["none", "high-lr"],
        default="none",
        help="high-lr: learning rate 50, which diagnostics flag as an error",
    )
    parser.add_argument("--session", help="session id (default: a new one)")
    parser.add_argument(
        "--seed", type=_seed, default=0, help="data split and initialisation (default 0)"
    )
    parser.add_argument("--tsne", action="store_true", help="also record a t-SNE of digits")
    parser.add_argument("--word2vec", action="store_true", help="also record word2vec training")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    try:
        import torch
    except ImportError:
        print("demo_train.py trains a PyTorch model: pip install torch==2.13.0 (CPU build)")
        return 2

    torch.set_num_threads(1)
    if args.remote:
        from embedviz.errors import InputError
        from embedviz.stats.remote import RemoteStatsRouter

        try:
            storage = RemoteStatsRouter(args.remote, token=args.token)
        except InputError as exc:  # a bad URL or token: one line, no traceback
            parser.error(str(exc))
        where = args.remote
    else:
        from embedviz.stats.storage import SQLiteStatsStorage

        storage = SQLiteStatsStorage(args.db)
        where = args.db
    lr = 50.0 if args.fault == "high-lr" else args.lr
    with np.errstate(all="ignore"):
        sessions = [train_mlp(storage, args.epochs, lr, args.session, args.seed)]
    if args.tsne:
        sessions.append(run_tsne(storage))
    if args.word2vec:
        sessions.append(run_word2vec(storage))
    storage.close()
    if args.remote:
        return report_remote(storage, sessions)
    print(f"recorded session(s) {', '.join(sessions)} into {where}")
    print(f"view: embedviz ui {args.db}    check: embedviz check {args.db}")
    return 0


def report_remote(router, sessions: list[str]) -> int:
    """Say what the remote UI really got (after ``router.close()``); 0 only if everything."""
    names = ", ".join(sessions)
    left, spill = router.pending(), router.spill_path
    if router.refused is not None:
        print(
            f"NOT recorded: {router.url} refused the records ({router.refused}); "
            f"{left} record(s) of session(s) {names} are kept in {spill}. Send them with "
            f"RemoteStatsRouter(URL, token=<the right token>, spill_path={str(spill)!r})."
        )
        return 1
    if left:
        print(
            f"partly recorded: {router.sent} record(s) of session(s) {names} reached "
            f"{router.url}; {left} could not be sent and are kept in {spill}. Send them "
            f"later with RemoteStatsRouter(URL, spill_path={str(spill)!r})."
        )
        return 1
    if router.rejected:
        print(
            f"partly recorded: {router.sent} record(s) of session(s) {names} stored by "
            f"{router.url}; {router.rejected} rejected as invalid (kept in the 'rejected' "
            f"table of {spill}; the UI's log says why)."
        )
        return 1
    print(f"recorded session(s) {names} into {router.url} ({router.sent} records accepted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
