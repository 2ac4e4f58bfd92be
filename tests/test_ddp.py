"""The engine under DistributedDataParallel: 2 CPU processes (gloo) train the face prior and end identical, each
reading its own shard of the training faces."""
import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from hypersiren.engine import EngineConfig, train

OPTIONS = EngineConfig(steps=3, lr=1e-3, summary_every=0, clip_grad=1.0, progress=False)


PRIORS = {"hypernet": dict(hidden_features=8, hidden_layers=1, latent_dim=4),
          "basis": dict(hidden_features=8, hidden_layers=1, basis_features=12, encoder_latent=4, encoder_dim=8,
                        queries=2, encoder_layers=1)}


def _task(method: str):
    from hypersiren.tasks.face_prior import FacePrior

    torch.manual_seed(0)
    config = FacePrior.Config(resolution=8, eval_images=4, batch_size=4, engine=OPTIONS,
                              prior={"method": method, **PRIORS[method]})
    return FacePrior(config, torch.device("cpu"))


def _worker(rank: int, folder: str, method: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        task = _task(method)
        if rank == 1:  # DDP must broadcast rank 0's initial weights
            with torch.no_grad():
                for p in task.model.parameters():
                    p.add_(1.0)
        metrics = train(task, OPTIONS, f"{folder}/run", {"command": "test"})
        assert (metrics == {}) == (rank == 1)  # only rank 0 evaluates and writes
        save_file({k: v.contiguous() for k, v in task.model.state_dict().items()}, f"{folder}/rank{rank}.safetensors")
        sampler = task.faces.sampler
        with open(f"{folder}/rank{rank}.json", "w") as f:
            json.dump({"faces": len(task.faces), "shard": sampler.shard.tolist(),
                       "drawn": [sampler.at(step).tolist() for step in range(OPTIONS.steps)]}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", sorted(PRIORS))
def test_two_gloo_ranks_end_with_identical_weights(tmp_path, method):
    mp.spawn(_worker, args=(str(tmp_path), method), nprocs=2, join=True)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in range(2))
    initial = _task(method).model.state_dict()
    single = _task(method)
    train(single, OPTIONS, tmp_path / "single", {"command": "test"})
    moved = differs_from_single = False
    for name, weights in rank0.items():
        torch.testing.assert_close(rank1[name], weights, atol=0, rtol=0)
        moved |= not torch.equal(weights, initial[name])
        differs_from_single |= not torch.equal(weights, single.model.state_dict()[name])
    assert moved  # it trained
    assert differs_from_single  # the ranks drew different batches and averaged their gradients
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()

    shards = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    count = shards[0]["faces"]
    assert sorted(shards[0]["shard"] + shards[1]["shard"]) == list(range(count))  # disjoint, and every face
    assert abs(len(shards[0]["shard"]) - len(shards[1]["shard"])) <= 1
    for rank in shards:
        assert {i for batch in rank["drawn"] for i in batch} <= set(rank["shard"])  # each rank reads its own


def _script_worker(rank: int, folder: str, port: int, argv: list[str]) -> None:
    import contextlib
    import os
    import runpy
    from pathlib import Path

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    script = Path(__file__).resolve().parents[1] / "train" / "celeba_prior.py"
    main = runpy.run_path(str(script), run_name="celeba_prior")["main"]
    with open(f"{folder}/stdout{rank}.txt", "w") as out, contextlib.redirect_stdout(out):
        code = main(argv)
    with open(f"{folder}/code{rank}.txt", "w") as f:
        f.write(str(code))


def test_celeba_prior_script_under_torchrun_joins_the_group(tmp_path):
    """``torchrun train/celeba_prior.py``: every process joins the gloo group (rank 1 trains silently), one run."""
    import socket

    import numpy as np
    from PIL import Image

    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(12):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(faces / f"{i}.png")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tiny = [f"--{k.replace('_', '-')}={v}" for k, v in PRIORS["basis"].items()]
    argv = ["--basis", *tiny, "--data", str(faces), "--val-fraction", "0.25", "--resolution", "8", "--batch-size", "2",
            "--workers", "0", "--steps", "2", "--eval-images", "2", "--summary-every", "0", "--no-progress",
            "--out", str(tmp_path / "run")]
    mp.spawn(_script_worker, args=(str(tmp_path), port, argv), nprocs=2, join=True)
    assert [(tmp_path / f"code{r}.txt").read_text() for r in range(2)] == ["0", "0"]
    assert "celeba_prior: training the basis prior" in (tmp_path / "stdout0.txt").read_text()
    assert (tmp_path / "stdout1.txt").read_text() == ""  # rank 1 of the group: silent
    from hypersiren.checkpoint import load_checkpoint

    state, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert state["step"] == 2 and meta["model"]["method"] == "basis"  # one run, written by rank 0
