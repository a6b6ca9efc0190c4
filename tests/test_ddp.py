"""DistributedDataParallel on CPU (gloo): ranks train on disjoint shards, only rank 0 writes."""

from __future__ import annotations

import math

import pytest
from conftest import run_python, write_tree

torch = pytest.importorskip("torch")  # the torch tier: where torch is not installed, the module is skipped

from fer_core.checkpoint import load_checkpoint  # noqa: E402
from fer_core.train import rank_batches  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("n, batch_size, world", [(37, 8, 2), (64, 8, 2), (50, 4, 3), (20, 8, 1)])
def test_ranks_get_disjoint_equal_shards(n, batch_size, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    per_rank = [rank_batches(order, batch_size, rank, world) for rank in range(world)]
    steps = n // (batch_size * world)
    assert all(len(batches) == steps for batches in per_rank)  # same step count: no rank waits forever
    assert all(len(b) == batch_size for batches in per_rank for b in batches)
    seen = torch.cat([b for batches in per_rank for b in batches]).tolist()
    assert len(seen) == len(set(seen)) == steps * batch_size * world  # no image twice
    assert sorted(seen) == sorted(order[: steps * batch_size * world].tolist())
    if world == 1:  # a single process keeps the plain consecutive batches
        assert [b.tolist() for b in per_rank[0]] == [order[i : i + batch_size].tolist() for i in range(0, n - 7, 8)]


@pytest.mark.slow  # two processes train for ~1 min on 2 cores
def test_torchrun_trains_on_two_processes(tmp_path):
    data = write_tree(
        tmp_path / "data", {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]}, per_class=5
    )
    out = tmp_path / "runs"
    limit, batch_size, world = 32, 8, 2
    r = run_python(
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(world),
        "-m",
        "fer_core",
        "train",
        "--model",
        "resnet18",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--limit",
        str(limit),
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
        "--no-progress",
        "--threads",
        "1",
        timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # only rank 0 reports and writes: one banner, one epoch line, exactly the three run files
    assert r.stdout.count("training ResNet18") == 1 and f"{world} process(es)" in r.stdout, r.stdout
    assert r.stdout.count("epoch   1/1") == 1, r.stdout
    run = out / "resnet18"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "history.json", "last.pt"]

    last = load_checkpoint(run / "last.pt")
    steps = limit // (batch_size * world)
    assert last["epoch"] == 1 and last["config"]["limit"] == limit
    assert last["scheduler"]["last_epoch"] == steps  # each rank took half the steps of one process
    (row,) = last["history"]
    assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0
    assert 0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1 and math.isfinite(row["val_loss"])
    assert not any(k.startswith("module.") for k in last["state_dict"])  # the bare model, not the DDP wrapper
    best = load_checkpoint(run / "best.pt")
    assert best["best"]["split"] == "val" and best["best"]["epoch"] == 1 and "optimizer" not in best
