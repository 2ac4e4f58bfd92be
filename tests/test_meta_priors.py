"""Meta-learned priors (MAML, Reptile, functa): context gathering, inner loops, outer gradients against finite
differences, Reptile's update, inference modes and checkpoint round trips."""
import pytest
import torch
import torch.nn.functional as F

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.data.grid import grid
from hypersiren.errors import InputError
from hypersiren.priors import PRIORS
from hypersiren.priors.functa import Functa
from hypersiren.priors.inner_loop import masked_mse, padded_context
from hypersiren.priors.maml import MAML, Reptile

TINY = dict(hidden_features=16, hidden_layers=1)
METHODS = {"maml": dict(TINY), "reptile": dict(TINY), "functa": dict(TINY, latent_dim=8)}


def faces(batch: int = 3, resolution: int = 12) -> torch.Tensor:
    """Real faces from scikit-image (LFW), grey repeated to RGB, in [-1, 1]: (B, 3, R, R)."""
    from skimage import data

    images = torch.tensor(data.lfw_subset()[:batch], dtype=torch.float32)[:, None]
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear").repeat(1, 3, 1, 1) * 2 - 1


def random_masks(batch: int, resolution: int, fraction: float, seed: int = 0) -> torch.Tensor:
    masks = torch.rand(batch, resolution, resolution, generator=torch.Generator().manual_seed(seed)) < fraction
    masks[:, 0, 0] = True  # never empty
    return masks


def test_padded_context_gathers_known_pixels_and_pads_with_zero_weight():
    images = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3, 3)
    masks = torch.zeros(2, 3, 3, dtype=torch.bool)
    masks[0, 0, 1] = masks[0, 2, 2] = True
    masks[1, 1, 0] = True
    coords, values, weights = padded_context(images, masks)
    assert coords.shape == (2, 2, 2) and values.shape == (2, 2, 3) and weights.tolist() == [[1, 1], [1, 0]]
    pixel_coords = grid(3, 3)
    assert torch.equal(coords[0], pixel_coords[[1, 8]]) and torch.equal(coords[1, 0], pixel_coords[3])
    assert torch.equal(values[0, 0], images[0, :, 0, 1]) and torch.equal(values[0, 1], images[0, :, 2, 2])
    assert torch.equal(values[1, 0], images[1, :, 1, 0]) and torch.equal(values[1, 1], torch.zeros(3))


def test_masked_mse_ignores_padding():
    prediction = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    values = torch.zeros(1, 2, 2)
    assert masked_mse(prediction, values, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.0)
    assert masked_mse(prediction, values, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(13.0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_inner_loop_lowers_the_context_loss(method):
    torch.manual_seed(0)
    prior = PRIORS[method](**METHODS[method], inner_lr=0.1, inner_steps=5)
    images, masks = faces(), random_masks(3, 12, 0.3)
    context = padded_context(images, masks)
    start = prior.public_code(prior.start(3, images))
    code = prior.infer(images, masks)
    before = masked_mse(prior.render(start, context[0]), *context[1:])
    after = masked_mse(prior.render(code, context[0]), *context[1:])
    assert (after < before).all(), (before, after)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_infer_reads_only_known_pixels_and_works_without_grad(method):
    torch.manual_seed(0)
    prior = PRIORS[method](**METHODS[method])
    images, masks = faces(2, 8), random_masks(2, 8, 0.25)
    masks[1] = False
    masks[1, 2, 3:6] = True  # fewer known pixels than sample 0: its context is padded
    poisoned = images.masked_fill(~masks[:, None], float("nan"))
    coords = grid(8, 8).expand(2, -1, -1)
    reference = prior.render(prior.infer(images, masks), coords)
    with torch.inference_mode():
        poisoned_code = prior.infer(poisoned, masks)
    with torch.no_grad():
        result = prior.render(poisoned_code, coords)
    assert torch.isfinite(result).all() and torch.allclose(result, reference, atol=1e-6)
    assert not result.requires_grad


def _finite_difference(loss_of, parameter: torch.Tensor, indices: list[int], eps: float = 1e-6) -> torch.Tensor:
    flat = parameter.data.view(-1)
    estimates = []
    for i in indices:
        original = flat[i].item()
        flat[i] = original + eps
        plus = loss_of().item()
        flat[i] = original - eps
        minus = loss_of().item()
        flat[i] = original
        estimates.append((plus - minus) / (2 * eps))
    return torch.tensor(estimates, dtype=torch.float64)


def _meta_problem(prior):
    torch.manual_seed(1)
    images, masks = faces(2, 6).double(), random_masks(2, 6, 0.4, seed=2)
    coords = grid(6, 6).double().expand(2, -1, -1)
    values = images.flatten(2).transpose(1, 2)
    return lambda: prior.training_loss(images, masks, coords, values)[0]


def _check_gradients(prior, loss_of, names: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    prior.zero_grad()
    loss_of().backward()
    parameters = dict(prior.named_parameters())
    results = {}
    for name in names:
        p = parameters[name]
        indices = list(range(min(p.numel(), 6)))
        results[name] = (p.grad.reshape(-1)[indices].clone(), _finite_difference(loss_of, p, indices))
    return results


def test_maml_outer_gradient_flows_through_the_inner_steps():
    torch.manual_seed(0)
    prior = MAML(hidden_features=4, hidden_layers=1, first_omega=3.0, hidden_omega=3.0, inner_steps=2, inner_lr=0.5,
                 learn_inner_lr=True).double()
    loss_of = _meta_problem(prior)
    names = ["siren.layers.0.weight", "siren.layers.1.weight", "siren.layers.2.bias", "inner_lrs"]
    second_order = _check_gradients(prior, loss_of, names)
    for name, (autograd, numeric) in second_order.items():
        assert torch.allclose(autograd, numeric, rtol=1e-4, atol=1e-7), name
    # the first-order approximation drops the second-order terms: it must differ from the true gradient
    prior.config = prior.config.replace(first_order=True)
    first_order = _check_gradients(prior, loss_of, ["siren.layers.0.weight"])["siren.layers.0.weight"][0]
    assert not torch.allclose(first_order, second_order["siren.layers.0.weight"][1], rtol=1e-2)


def test_functa_outer_gradient_matches_finite_differences():
    torch.manual_seed(0)
    prior = Functa(hidden_features=4, hidden_layers=1, first_omega=3.0, hidden_omega=3.0, latent_dim=3,
                   inner_steps=2, inner_lr=2.0).double()
    loss_of = _meta_problem(prior)
    names = ["siren.layers.0.weight", "siren.layers.2.weight", "to_shifts.weight", "to_shifts.bias", "inner_lrs"]
    for name, (autograd, numeric) in _check_gradients(prior, loss_of, names).items():
        assert torch.allclose(autograd, numeric, rtol=1e-4, atol=1e-7), name
    assert prior.inner_lrs.grad.abs().sum() > 0  # meta-SGD learns the inner learning rates


def test_reptile_update_is_the_mean_difference_to_the_fitted_weights():
    torch.manual_seed(0)
    prior = Reptile(**TINY, inner_steps=3, inner_lr=0.1)
    images, masks = faces(3, 8), random_masks(3, 8, 0.2)
    coords = grid(8, 8).expand(3, -1, -1)
    values = images.flatten(2).transpose(1, 2)
    loss, logs = prior.training_loss(images, masks, coords, values)
    loss.backward()
    with torch.no_grad():
        fitted, _ = prior.adapt((coords, values, torch.ones(3, 64)), 3, create_graph=False)
    for name, p in prior.siren.named_parameters():
        assert torch.allclose(p.grad, p.detach() - fitted[name].mean(dim=0), atol=1e-6), name
    assert logs["target_mse_after"] < logs["target_mse_before"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_few_training_steps_lower_the_target_loss(method):
    torch.manual_seed(0)
    prior = PRIORS[method](**METHODS[method], inner_lr=0.05)
    images, masks = faces(4, 8), random_masks(4, 8, 0.3)
    coords = grid(8, 8).expand(4, -1, -1)
    values = images.flatten(2).transpose(1, 2)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-3)

    def target_mse():
        with torch.no_grad():
            return F.mse_loss(prior.render(prior.infer(images, masks), coords), values).item()

    before = target_mse()
    for _ in range(30):
        optimizer.zero_grad()
        prior(images, masks, coords, values)[0].backward()
        optimizer.step()
    assert target_mse() < 0.8 * before


@pytest.mark.parametrize("method", sorted(METHODS))
def test_checkpoint_round_trip_rebuilds_the_same_prior(method, tmp_path):
    torch.manual_seed(0)
    prior = PRIORS[method](**METHODS[method])
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not the initialisation
    path = tmp_path / "prior.safetensors"
    save_checkpoint(path, {"model": prior.state_dict()}, {"kind": f"prior/{method}", "model": {"method": method, **prior.config.to_dict()}})
    state, meta = load_checkpoint(path, kind="prior")
    config = dict(meta["model"])
    loaded = PRIORS[config.pop("method")](**config)
    loaded.load_state_dict(state["model"])
    images, masks = faces(2, 8), random_masks(2, 8, 0.3)
    coords = grid(8, 8).expand(2, -1, -1)
    expected = prior.render(prior.infer(images, masks), coords)
    assert torch.equal(loaded.render(loaded.infer(images, masks), coords), expected)


def test_latent_dim_and_config():
    assert Functa(**TINY, latent_dim=7).latent_dim == 7
    assert MAML(**TINY).latent_dim is None and Reptile(**TINY).latent_dim is None
    assert Reptile(**TINY).config.inner_steps == 5  # Reptile's own default
    for method, kwargs in METHODS.items():
        prior = PRIORS[method](**kwargs)
        assert type(prior)(**prior.config.to_dict()).config == prior.config


@pytest.mark.parametrize("make", [
    lambda: MAML(**TINY, inner_steps=-1),
    lambda: MAML(**TINY, inner_lr=0.0),
    lambda: Reptile(**TINY, inner_steps=0),
    lambda: Reptile(**TINY, learn_inner_lr=True),
    lambda: Functa(**TINY, latent_dim=0),
    lambda: Functa(**TINY, inner_lr=float("nan")),
])
def test_bad_configurations_are_input_errors(make):
    with pytest.raises(InputError):
        make()


TRAIN = ["--resolution", "32", "--batch-size", "3", "--eval-images", "2", "--hidden-features", "16",
         "--hidden-layers", "1", "--inner-steps", "2", "--summary-every", "0", "--no-progress"]


METHOD_OPTIONS = {  # each method's own command-line options, and the config they must produce
    "maml": (["--learn-inner-lr", "--first-order"], dict(learn_inner_lr=True, first_order=True)),
    "reptile": (["--inner-lr", "0.05"], dict(inner_lr=0.05, learn_inner_lr=False)),
    "functa": (["--no-meta-sgd", "--latent-dim", "8"], dict(meta_sgd=False, latent_dim=8, first_order=False)),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_train_prior_then_load_and_complete(method, cli, tmp_path):
    import json

    import numpy as np

    from hypersiren.prior import HyperSiren

    out = tmp_path / method
    options, expected = METHOD_OPTIONS[method]
    code, stdout, stderr = cli("train", "prior", "--method", method, "--steps", "2", *TRAIN, *options, "--out", out)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"psnr_10", "psnr_half"} <= set(metrics) and (out / "completions.png").is_file()
    prior = HyperSiren.load(out / "checkpoint.safetensors")
    assert type(prior.prior).method == method
    assert prior.prior.config.to_dict() | expected | {"inner_steps": 2} == prior.prior.config.to_dict()
    face = (faces(1, 40)[0].permute(1, 2, 0).numpy() + 1) / 2  # (H, W, 3) float in [0, 1]
    completed = prior.complete(face, num_pixels=100)
    assert completed.shape == (40, 40, 3) and completed.dtype == np.float32
    refined = prior.complete(face, mask="half", refine_steps=2)
    assert refined.shape == (40, 40, 3) and np.isfinite(refined).all()
    from hypersiren.data.image import save_image

    save_image(torch.from_numpy(face).permute(2, 0, 1), tmp_path / "face.png")
    code_out, stdout, stderr = cli("complete", "--checkpoint", out / "checkpoint.safetensors", "--image",
                                   tmp_path / "face.png", "--pixels", "50", "--refine-steps", "1",
                                   "--resolution", "32", "--out", tmp_path / "c.png")
    assert code_out == 0 and (tmp_path / "c.png").is_file(), stderr


def test_functa_resume_ends_with_the_same_weights(cli, tmp_path):
    from hypersiren.checkpoint import load_checkpoint

    args = ["train", "prior", "--method", "functa", *TRAIN]
    assert cli(*args, "--steps", "4", "--out", tmp_path / "straight")[0] == 0
    assert cli(*args, "--steps", "2", "--out", tmp_path / "resumed")[0] == 0
    assert cli(*args, "--steps", "4", "--resume", "--out", tmp_path / "resumed")[0] == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.safetensors")[0]["model"]
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.safetensors")[0]["model"]
    assert set(straight) == set(resumed) and "inner_lrs" in straight
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_compare_priors_and_refine_sweep_scripts(tmp_path, capsys):
    import json
    import runpy
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "eval"
    from hypersiren.experiments import parse

    compare = runpy.run_path(str(scripts / "compare_priors.py"), run_name="eval_compare_priors")
    out = tmp_path / "compare"
    assert compare["main"](["--methods", "maml,functa", "--steps", "100000", "--cpu-minutes", "0.0001", "--threads",
                            "1", "--settings", "100,half", "--eval-images", "3", "--method-args", "functa=--latent-dim 8",
                            "--out", str(out), "--", *TRAIN]) == 0
    result = json.loads((out / "comparison.json").read_text())
    references = {"mean face (no SIREN)", "Gaussian over pixels (no SIREN)"}  # --references, the default
    assert set(result["methods"]) == {"maml", "functa"} | references and result["faces"] == 3
    assert all(1 <= result["methods"][m]["steps"] < 100000 for m in ("maml", "functa"))  # the CPU budget stopped each
    gaussian = result["methods"]["Gaussian over pixels (no SIREN)"]
    assert gaussian["steps"] is None and gaussian["metrics"]["half"]["psnr"] > result["methods"]["mean face (no SIREN)"][
        "metrics"]["half"]["psnr"]  # the known half moves the rest of the face
    assert "| Gaussian over pixels (no SIREN) | - | - | - |" in (out / "comparison.md").read_text()
    assert "0.0001 min of CPU time per method, 1 thread" in (out / "comparison.md").read_text()
    assert set(result["methods"]["functa"]["metrics"]) == {"100", "half"}
    assert "| maml |" in (out / "comparison.md").read_text() and (out / "completions.png").is_file()

    sweep = runpy.run_path(str(scripts / "refine_sweep.py"), run_name="eval_refine_sweep")
    assert sweep["main"](["--checkpoint", str(out / "functa" / "checkpoint.safetensors"), "--refine-steps", "0,2",
                          "--settings", "10,full", "--eval-images", "3", "--out", str(tmp_path / "sweep")]) == 0
    result = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert set(result["results"]) == {"0", "2"} and (tmp_path / "sweep" / "sweep.png").is_file()
    with pytest.raises(InputError, match="does not generate SIREN weights"):
        sweep["run"](parse(sweep["RefineSweep"], ["--checkpoint", str(out / "functa" / "checkpoint.safetensors"),
                                                  "--weights", "--eval-images", "3", "--out", str(tmp_path / "bad")]))
