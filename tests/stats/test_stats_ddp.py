"""StatsListener under torch.distributed: 2 CPU processes with gloo (issue 4 §2, §7)."""

import multiprocessing

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

from embedviz.stats.listener import StatsListener  # noqa: E402
from embedviz.stats.storage import SQLiteStatsStorage  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def _rank_main(rank, init_file, db, report_ranks):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(
            torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        storage = SQLiteStatsStorage(db)
        gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        with StatsListener(storage, model, opt, frequency=2, report_ranks=report_ranks) as lis:
            for _ in range(10):
                x = torch.randn(32, 8, generator=gen)
                loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                lis.step(loss, batch_size=32)
        storage.close()
    finally:
        dist.destroy_process_group()


def _run(tmp_path, report_ranks):
    db = tmp_path / f"ddp-{report_ranks}.db"
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(
            target=_rank_main, args=(r, tmp_path / f"init-{report_ranks}", db, report_ranks)
        )
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return SQLiteStatsStorage(db, read_only=True)


def test_every_rank_reports_into_one_session(tmp_path):
    storage = _run(tmp_path, "all")
    (session,) = storage.list_sessions()  # the session id was agreed across ranks
    assert sorted(storage.list_workers(session)) == ["0", "1"]
    u0 = storage.get_updates(session, "0")
    u1 = storage.get_updates(session, "1")
    assert [u.iteration for u in u0] == [u.iteration for u in u1] == [0, 2, 4, 6, 8]
    info = storage.get_static_info(session, "1")
    assert info.config["world_size"] == 2
    for a, b in zip(u0, u1, strict=True):
        assert a.score != b.score  # different data per rank ...
        for name in a.params:  # ... but DDP averages gradients: same weights, same updates
            assert a.params[name].param_mean == pytest.approx(b.params[name].param_mean)
            assert a.params[name].grad_mean_magnitude == pytest.approx(
                b.params[name].grad_mean_magnitude, rel=1e-5
            )
    assert set(u0[0].params) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # no "module."
    storage.close()


def test_only_rank_zero_reports(tmp_path):
    storage = _run(tmp_path, "zero")
    (session,) = storage.list_sessions()
    assert storage.list_workers(session) == ["0"]
    assert storage.count_updates(session) == 5
    storage.close()
