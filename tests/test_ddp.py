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
