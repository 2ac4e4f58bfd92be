"""Hypernetwork prior: encoders, hypernetworks (shapes, SIREN-like initialisation, batched rendering), loss."""
import math

import pytest
import torch

from hypersiren.data.grid import grid
from hypersiren.nn.encoders import CNNEncoder, SetEncoder, context_points
from hypersiren.nn.hypernet import FullHypernet, LightHypernet
from hypersiren.nn.siren import Siren
from hypersiren.priors import PRIORS
from hypersiren.priors.hypernet import HypernetPrior

SIREN = dict(in_features=2, out_features=3, hidden_features=64, hidden_layers=2, first_omega=30.0, hidden_omega=30.0)
TINY = dict(latent_dim=16, hidden_features=16, hidden_layers=1, head_features=16)


def faces(batch=3, resolution=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1
    masks = torch.rand(batch, resolution, resolution, generator=g) < 0.3
    masks[:, 0, 0] = True
    return images, masks


def test_registered_and_paper_size():
    assert PRIORS["hypernet"] is HypernetPrior
    prior = HypernetPrior()  # paper: set encoder + one 3-layer head per tensor of a SIREN 2 -> 256 x 4 -> 3
    count = sum(p.numel() for p in prior.parameters())
    assert 52.0e6 < count < 53.0e6
    assert sum(p.numel() for p in HypernetPrior(hypernet="light").parameters()) < count / 50


def test_full_hypernet_shapes_and_siren_init_scale():
    torch.manual_seed(0)
    net = FullHypernet(SIREN, latent_dim=32)
    template = Siren(**SIREN)
    generated = net(torch.randn(8, 32) * 0.1)["params"]
    assert set(generated) == set(template.parameter_shapes())
    for name, bound in template.init_bounds().items():
        assert generated[name].shape == (8, *template.parameter_shapes()[name])
        if generated[name][0].numel() >= 64:  # enough values for a meaningful std (not the 3 output biases)
            assert generated[name].std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15), name
        assert generated[name].abs().max().item() < 1.3 * bound, name


def hidden_preactivations(siren: Siren, coords: torch.Tensor, params: dict | None) -> torch.Tensor:
    """Second sine layer's pre-activation (inside the sine, w0 included)."""
    first_w = params["layers.0.weight"] if params else siren.layers[0].weight
    first_b = params["layers.0.bias"] if params else siren.layers[0].bias
    x = torch.sin(30 * (coords @ first_w.transpose(-1, -2) + first_b.unsqueeze(-2)))
    w = params["layers.1.weight"] if params else siren.layers[1].weight
    b = params["layers.1.bias"] if params else siren.layers[1].bias
    return 30 * (x @ w.transpose(-1, -2) + b.unsqueeze(-2))


def test_generated_siren_hidden_activation_statistics_match_a_siren():
    torch.manual_seed(1)
    net = FullHypernet(SIREN, latent_dim=32)
    coords = grid(32, 32).expand(4, -1, -1)
    generated = net(torch.randn(4, 32) * 0.1)["params"]
    ours = hidden_preactivations(net.siren, coords, generated).std().item()
    reference = hidden_preactivations(Siren(**SIREN), coords[0], None).std().item()
    assert ours == pytest.approx(reference, rel=0.2)


@pytest.mark.parametrize("cls", [FullHypernet, LightHypernet])
def test_batched_rendering_equals_single_rendering(cls):
    torch.manual_seed(2)
    net = cls(SIREN, latent_dim=8)
    latents = torch.randn(3, 8)
    coords = torch.rand(3, 50, 2) * 2 - 1
    together = net.render(net(latents), coords)
    assert together.shape == (3, 50, 3)
    for i in range(3):
        alone = net.render(net(latents[i : i + 1]), coords[i : i + 1])
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)
    if cls is FullHypernet:  # and equals a plain SIREN holding that sample's weights
        single = Siren(**SIREN)
        single.load_state_dict({k: v[1] for k, v in net(latents)["params"].items()})
        torch.testing.assert_close(together[1], single(coords[1]), atol=1e-5, rtol=1e-5)


def test_light_hypernet_starts_as_the_shared_siren_and_penalty_closed_form():
    torch.manual_seed(3)
    net = LightHypernet(SIREN, latent_dim=8)
    generated = net(torch.randn(2, 8))
    assert generated["shifts"].shape == (2, 3, 64)
    assert generated["shifts"].abs().max() < 0.05
    theta = []
    for b in range(2):
        for i, layer in enumerate(net.siren.layers):
            bias = layer.bias + (generated["shifts"][b, i] if i < 3 else 0)
            theta += [layer.weight.flatten(), bias.flatten()]
    expected = torch.cat(theta).pow(2).mean()
    torch.testing.assert_close(net.weight_penalty(generated), expected)


def test_full_penalty_closed_form():
    net = FullHypernet(SIREN, latent_dim=8)
    generated = net(torch.randn(2, 8))
    expected = torch.cat([p.flatten() for p in generated["params"].values()]).pow(2).mean()
    torch.testing.assert_close(net.weight_penalty(generated), expected)


def test_context_points_reads_the_known_pixels_in_order():
    images, masks = faces(2, 4)
    points, owner = context_points(images, masks, grid(4, 4))
    assert len(points) == masks.sum()
    b, i, j = masks.nonzero()[0].tolist()
    assert owner[0] == b
    torch.testing.assert_close(points[0], torch.cat([grid(4, 4)[i * 4 + j], images[b, :, i, j]]))


@pytest.mark.parametrize("encoder", [SetEncoder(16, 32, activation="relu"), SetEncoder(16, 32, activation="sine"), CNNEncoder(16, 16)])
def test_encoders_ignore_unknown_pixels(encoder):
    images, masks = faces(3, 8)
    coords = grid(8, 8)
    latent = encoder(images, masks, coords)
    assert latent.shape == (3, 16)
    changed = torch.where(masks[:, None], images, torch.rand_like(images))
    torch.testing.assert_close(encoder(changed, masks, coords), latent)


def test_set_encoder_is_a_masked_mean_and_permutation_invariant():
    encoder = SetEncoder(16, 32)
    images, masks = faces(2, 8)
    coords = grid(8, 8)
    latent = encoder(images, masks, coords)
    points, owner = context_points(images, masks, coords)
    embeddings = encoder.net(points)
    for b in range(2):
        torch.testing.assert_close(latent[b], embeddings[owner == b].mean(0), atol=1e-6, rtol=1e-5)
    flipped = encoder(images.flip(-1), masks.flip(-1), coords * torch.tensor([1.0, -1.0]))  # same points, other order
    torch.testing.assert_close(flipped, latent, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("options", [dict(encoder="set", hypernet="full"), dict(encoder="cnn", hypernet="light")])
def test_training_loss_closed_form(options):
    torch.manual_seed(4)
    prior = HypernetPrior(**options, **TINY)
    images, masks = faces(2, 8)
    coords = grid(8, 8).expand(2, -1, -1)
    values = images.flatten(2).transpose(1, 2)
    loss, logs = prior.training_loss(images, masks, coords, values)
    latent = prior.infer(images, masks)
    generated = prior.hypernet(latent)
    mse = (prior.render(latent, coords) - values).pow(2).mean()
    expected = mse + 0.1 * latent.pow(2).mean() + 100 * prior.hypernet.weight_penalty(generated)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logs["mse"], mse.detach())
    forward_loss, _ = prior(images, masks, coords, values)  # the DDP-friendly entry point
    torch.testing.assert_close(forward_loss, loss)


@pytest.mark.parametrize("hypernet", ["full", "light"])
def test_a_few_steps_lower_the_loss(hypernet):
    torch.manual_seed(5)
    prior = HypernetPrior(hypernet=hypernet, **TINY)
    images, masks = faces(4, 8)
    coords = grid(8, 8).expand(4, -1, -1)
    values = images.flatten(2).transpose(1, 2)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss, _ = prior(images, masks, coords, values)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="encoder must be one of"):
        HypernetPrior(encoder="transformer")
