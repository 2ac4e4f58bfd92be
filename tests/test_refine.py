"""Test-time refinement: never worse on the context, actually better with sensible settings, the penalty holds the
code near the prediction, only known pixels are read, every kind of code works."""
import pytest
import torch

from hypersiren.errors import InputError
from hypersiren.priors import PRIORS
from hypersiren.priors.inner_loop import masked_mse, padded_context
from hypersiren.priors.refine import refine, refine_code, relative_distance

from test_meta_priors import faces, random_masks

PRIOR_SETTINGS = {
    "hypernet": dict(hypernet="light", latent_dim=8, hidden_features=16, hidden_layers=1, head_features=16),
    "functa": dict(latent_dim=8, hidden_features=16, hidden_layers=1),
    "maml": dict(hidden_features=16, hidden_layers=1),
}


def context_fit(prior, code, images, masks):
    coords, values, weights = padded_context(images, masks)
    with torch.no_grad():
        return masked_mse(prior.render(code, coords), values, weights)


@pytest.mark.parametrize("method", sorted(PRIOR_SETTINGS))
@pytest.mark.parametrize("lr", [1e-3, 10.0])  # a sensible step and one that overshoots wildly
def test_refinement_never_makes_the_context_fit_worse(method, lr):
    torch.manual_seed(0)
    prior = PRIORS[method](**PRIOR_SETTINGS[method])
    images, masks = faces(3, 10), random_masks(3, 10, 0.2)
    code = prior.infer(images, masks)
    before = context_fit(prior, code, images, masks)
    refined = refine(prior, code, images, masks, steps=5, lr=lr, penalty=1e-3)
    after = context_fit(prior, refined, images, masks)
    assert (after <= before).all(), (before, after)


@pytest.mark.parametrize("method", ["hypernet", "functa"])
def test_refinement_improves_the_context_fit_of_latent_codes(method):
    torch.manual_seed(0)
    prior = PRIORS[method](**PRIOR_SETTINGS[method])
    images, masks = faces(3, 10), random_masks(3, 10, 0.2)
    code = prior.infer(images, masks)
    refined = refine(prior, code, images, masks, steps=20, lr=0.05, penalty=0.0)
    # (an untrained hypernetwork's output barely depends on its latent, so only a strict decrease is asked)
    assert (context_fit(prior, refined, images, masks) < context_fit(prior, code, images, masks)).all()
    assert refined.shape == code.shape and not refined.requires_grad


def test_refinement_minimises_fit_plus_penalty_on_a_linear_model():
    """render = code @ A: the refined code approaches the closed-form ridge solution."""
    torch.manual_seed(0)
    resolution, dim, penalty = 4, 5, 0.3
    images = torch.rand(1, 3, resolution, resolution) * 2 - 1
    masks = torch.ones(1, resolution, resolution, dtype=torch.bool)
    basis = torch.randn(dim, resolution * resolution * 3) * 0.5

    def render(code, coords):  # (1, dim) -> values at coords (1, K, 2), a linear function of the code
        out = (code @ basis).reshape(1, resolution * resolution, 3)
        row, col = ((coords[0] + 1) / 2 * (resolution - 1)).round().long().unbind(-1)
        return out[:, row * resolution + col]

    start = torch.zeros(1, dim)
    refined = refine_code(render, start, images, masks, steps=500, lr=3e-2, penalty=penalty)
    # objective = |code B - y|^2 / (3 P) + penalty |code|^2 / dim  ->  normal equations
    target = images.flatten(2).transpose(1, 2).reshape(1, -1)
    n = target.shape[1]
    gram = basis @ basis.T / n + penalty / dim * torch.eye(dim)
    exact = torch.linalg.solve(gram, basis @ target[0] / n)
    assert torch.allclose(refined[0], exact, atol=2e-3)


def test_a_large_penalty_keeps_the_code_near_the_prediction():
    torch.manual_seed(0)
    prior = PRIORS["functa"](**PRIOR_SETTINGS["functa"])
    images, masks = faces(2, 10), random_masks(2, 10, 0.2)
    code = prior.infer(images, masks) + 0.5
    free = refine(prior, code, images, masks, steps=20, lr=0.05, penalty=0.0)
    held = refine(prior, code, images, masks, steps=20, lr=0.05, penalty=1e4)
    assert (relative_distance({"code": held}, {"code": code}) < 0.1 * relative_distance({"code": free}, {"code": code})).all()


def test_relative_distance_is_measured_in_units_of_the_code_size():
    start = {"a": torch.tensor([[3.0, 4.0], [0.0, 0.0]]), "b": torch.tensor([[[0.5]], [[2.0]]])}
    code = {"a": torch.tensor([[3.0, 4.0 + 3.5355339], [1.0, 0.0]]), "b": torch.tensor([[[1.0]], [[0.0]]])}
    # sample 0: rms(a) = sqrt(12.5), rms(b) = 0.5 -> ((3.5355339 / 3.5355339)^2 + (0.5 / 0.5)^2) / 3 = 2 / 3
    # sample 1: rms(a) = 0 -> scale 1; rms(b) = 2 -> (1 + 1) / 3
    assert relative_distance(code, start).tolist() == [pytest.approx(2 / 3), pytest.approx(2 / 3)]


def test_refinement_is_invariant_to_the_scale_of_the_code():
    """A code and the same code stored 100x smaller (rendered 100x larger) refine to the same function."""
    torch.manual_seed(0)
    prior = PRIORS["functa"](**PRIOR_SETTINGS["functa"])
    images, masks = faces(2, 8), random_masks(2, 8, 0.3)
    code = prior.infer(images, masks) + 0.3
    refined = refine(prior, code, images, masks, steps=5, lr=0.05)
    small = refine_code(lambda c, coords: prior.render(100 * c, coords), code / 100, images, masks, steps=5, lr=0.05)
    assert torch.allclose(100 * small, refined, atol=1e-4)


def test_refinement_of_dict_codes_reads_only_known_pixels():
    torch.manual_seed(0)
    prior = PRIORS["maml"](**PRIOR_SETTINGS["maml"])
    images, masks = faces(2, 8), random_masks(2, 8, 0.3)
    code = prior.infer(images, masks)
    poisoned = images.masked_fill(~masks[:, None], float("nan"))
    with torch.inference_mode():
        refined = refine(prior, code, poisoned, masks, steps=3, lr=1e-4, penalty=1e-2)
    assert set(refined) == set(code)
    assert all(torch.isfinite(v).all() for v in refined.values())
    reference = refine(prior, code, images, masks, steps=3, lr=1e-4, penalty=1e-2)
    assert all(torch.allclose(refined[k], reference[k]) for k in code)


@pytest.mark.parametrize("form, lr", [("full", 0.05), ("light", 1.0)])  # untrained light shifts are ~0: larger relative steps
def test_refining_the_generated_weights_of_the_hypernetwork(form, lr):
    torch.manual_seed(0)
    prior = PRIORS["hypernet"](**PRIOR_SETTINGS["hypernet"] | {"hypernet": form})
    images, masks = faces(2, 10), random_masks(2, 10, 0.2)
    latent = prior.infer(images, masks)
    generated = prior.generate(latent)
    refined = refine(prior, latent, images, masks, steps=20, lr=lr, penalty=0.0, weights=True)
    assert isinstance(refined, dict) and refined.keys() == generated.keys()
    # the generated SIREN renders like the latent it came from, and refining it fits the context better
    assert torch.allclose(context_fit(prior, generated, images, masks), context_fit(prior, latent, images, masks))
    assert (context_fit(prior, refined, images, masks) < 0.99 * context_fit(prior, latent, images, masks)).all()
    with pytest.raises(InputError, match="does not generate SIREN weights"):
        refine(PRIORS["functa"](**PRIOR_SETTINGS["functa"]), latent, images, masks, steps=1, weights=True)


def test_zero_steps_return_the_code_and_bad_settings_are_input_errors():
    prior = PRIORS["functa"](**PRIOR_SETTINGS["functa"])
    images, masks = faces(1, 8), random_masks(1, 8, 0.3)
    code = prior.infer(images, masks)
    assert refine(prior, code, images, masks, steps=0) is code
    for kwargs in (dict(steps=-1), dict(steps=2, lr=0.0), dict(steps=2, penalty=-1.0)):
        with pytest.raises(InputError):
            refine(prior, code, images, masks, **kwargs)
    with pytest.raises(InputError, match="tensor or a dict of tensors"):
        refine(prior, [code], images, masks, steps=2)
