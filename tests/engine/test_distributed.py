"""Two gloo processes on CPU train the toy method through the Trainer's DDP path."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer
from toy import ToyData, ToyMethod, collate

STEPS = 4


def cfg_for(out_dir, batch_size):
    return load_config(overrides=[
        f"train.out_dir={out_dir}", f"train.steps={STEPS}", "train.checkpoint_every=2", "train.progress=false",
        f"data.batch_size={batch_size}", "optim.lr=0.2", "train.log_every=1", "train.device=cpu"])


def worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = cfg_for(out_dir, batch_size=2)
    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    trainer = Trainer(cfg, ToyMethod(), ToyData(7), collate)
    result = trainer.fit()
    torch.save({"params": trainer.method.state_dict(), "history": trainer.history, "eval": result["eval"]},
               os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_single_process_with_combined_batch(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for k, v in ranks[0]["params"].items():
        assert torch.equal(v, ranks[1]["params"][k]), f"{k} differs across ranks"

    torch.manual_seed(0)
    single = Trainer(cfg_for(tmp_path / "single", batch_size=4), ToyMethod(), ToyData(7), collate)
    single.fit()
    for k, v in single.method.state_dict().items():
        torch.testing.assert_close(ranks[0]["params"][k], v, rtol=1e-5, atol=1e-6)
    # logged losses are averaged over ranks: equal to the combined batch's mean loss (equal points per item)
    dist_losses = [r["loss"] for r in ranks[0]["history"] if "loss" in r]
    single_losses = [r["loss"] for r in single.history if "loss" in r]
    assert dist_losses == pytest.approx(single_losses, rel=1e-5)
    assert (tmp_path / "last.pt").is_file() and not (tmp_path / "rank1").exists()
