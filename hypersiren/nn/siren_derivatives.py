"""Forward-mode derivatives of a SIREN: value, Jacobian and Hessian diagonal in one pass, no double backward.

Every sine layer maps its input and the input's derivatives with respect to the coordinates in closed form.
With ``z = w0 (W x + b)`` and ``h = sin z``, for each coordinate ``j``::

    dz_j  = w0 W dx_j              dh_j  = cos z * dz_j
    d2z_j = w0 W d2x_j             d2h_j = cos z * d2z_j - sin z * dz_j^2

(the bias only enters ``z``). When only the Laplacian is needed, the d second-derivative rows collapse into
one, ``lap h = cos z * lap z - sin z * sum_j dz_j^2``. The value and the derivative rows of a layer travel
together as one *jet* tensor (..., 1 + d [+ d or 1], width), so each layer is a single matrix product. A sine
layer (matrix product and elementwise work) is one custom autograd function with a hand-written backward
pass. On CPU both passes run block by block over the points, so a block's elementwise work reads the output of
its matrix product from cache, and the elementwise work of a pass is one fused kernel where it can be compiled
(``hypersiren.nn.fused``). It keeps only the pre-activation jet (recomputing sin and cos), which is what makes
this path lighter than autograd's double backward. Higher derivatives (e.g. meta-learning through a derivative
loss) go through a plain differentiable formulation of the same layer.

Derivatives are taken with respect to the input coordinates; everything is differentiable with respect to the
parameters (the module's own or per-sample ``params``/``shifts``, as in ``Siren.forward``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from hypersiren.nn.fused import kernel
from hypersiren.nn.siren import Siren


def _jet_matmul(jet: Tensor, weight: Tensor) -> Tensor:
    """``jet W^T`` for every row of a jet (..., k, in) -> (..., k, out). Per-sample weight (B, out, in) goes
    with a jet (B, N, k, in) through one batched matrix product (no copy of W per point)."""
    if weight.dim() == 2:
        return torch.matmul(jet, weight.transpose(0, 1))
    b, n, k, width = jet.shape
    out = torch.bmm(jet.reshape(b, n * k, width), weight.transpose(-1, -2))
    return out.reshape(b, n, k, -1)


# Elements per block of a jet on CPU: a block's tensors (pre-activation, activation rows, their gradients) stay
# in the cache, so the elementwise work after a block's matrix product reads it from cache, not from memory.
_BLOCK_ELEMENTS = 1 << 20


def _blocks(jet: Tensor, width: int):
    """Indices (samples, points) of the blocks covering a jet (B, N, rows, in) of a layer of width ``width``:
    cache-sized runs of points of one sample on CPU; the whole jet at once on a GPU, which gains nothing from
    blocking and would pay a kernel launch per operation and block."""
    if jet.device.type != "cpu":
        yield slice(None), slice(None)
        return
    batch, points, rows = jet.shape[:3]
    step = max(1, _BLOCK_ELEMENTS // (rows * width))
    for b in range(batch):
        for start in range(0, points, step):
            yield slice(b, b + 1), slice(start, min(start + step, points))


class _SineJetLayer(torch.autograd.Function):
    """One sine layer applied to a jet: ``sin`` of ``jet W^T`` with the bias added to the value row.

    jet (B, N, k, in) with rows: the value, d first derivatives, then nothing (order 1), d second derivatives
    (Hessian diagonal) or, with ``trace``, their sum (the Laplacian). weight (out, in) or per-sample
    (B, out, in); bias (out,) or per-sample (B, out) (frequency already applied to both). Returns the
    activation's rows (B, N, k, out). ``training``: the forward pass is part of a training step (grad mode on),
    so its elementwise work is compiled like the backward pass's; rendering runs it eagerly.

    Forward and backward run block by block over the points (``_blocks``), so the matrix product of a block
    and its elementwise work (``_jet_rows`` / ``_jet_rows_vjp``, fused into one kernel each where
    ``hypersiren.nn.fused`` can compile them) stay in cache; the weight gradient is accumulated over the blocks.
    Saves the input jet (the previous layer's output, kept anyway) and the pre-activation without the bias;
    sin and cos are recomputed in the backward pass. When the backward pass is itself being differentiated
    (``create_graph``) it differentiates ``_sine_layer_reference`` instead, so higher derivatives (e.g.
    meta-learning through a derivative loss) work.
    """

    @staticmethod
    def forward(ctx, jet: Tensor, weight: Tensor, bias: Tensor, d: int, trace: bool, training: bool) -> Tensor:
        pre = jet.new_empty(*jet.shape[:-1], weight.shape[-2])
        out = torch.empty_like(pre)
        rows = kernel(_jet_rows, pre) if training else _jet_rows  # one-off inference is not worth compiling
        for samples, points in _blocks(jet, max(jet.shape[-1], pre.shape[-1])):
            block = pre[samples, points]
            torch.matmul(jet[samples, points].flatten(1, 2), _sample(weight, 2, samples).transpose(-1, -2),
                         out=block.flatten(1, 2))
            out[samples, points] = rows(block, _row_bias(_sample(bias, 1, samples)), d, trace)
        ctx.save_for_backward(jet, weight, bias, pre)
        ctx.d, ctx.trace = d, trace
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        jet, weight, bias, pre = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():
            inputs = [t for t, need in zip((jet, weight, bias), needs) if need]
            out = _sine_layer_reference(jet, weight, bias, ctx.d, ctx.trace)
            grads = iter(torch.autograd.grad(out, inputs, grad, create_graph=True))
            return (*(next(grads) if need else None for need in needs), None, None, None)
        grad = grad.contiguous()
        g_jet = torch.empty_like(jet) if needs[0] else None
        g_weight = torch.zeros_like(weight) if needs[1] else None
        g_bias = bias.new_zeros(jet.shape[0], bias.shape[-1]) if needs[2] else None
        vjp = kernel(_jet_rows_vjp, pre)
        for samples, points in _blocks(jet, max(jet.shape[-1], pre.shape[-1])):
            g_pre = vjp(grad[samples, points], pre[samples, points], _row_bias(_sample(bias, 1, samples)),
                        ctx.d, ctx.trace)
            g_flat = g_pre.flatten(1, 2)  # (samples, points * rows, out)
            if g_jet is not None:
                torch.matmul(g_flat, _sample(weight, 2, samples), out=g_jet[samples, points].flatten(1, 2))
            if g_weight is not None:
                _add_outer_products(_sample(g_weight, 2, samples), g_flat, jet[samples, points].flatten(1, 2))
            if g_bias is not None:
                g_bias[samples] += g_pre[..., 0, :].sum(1)
        if g_bias is not None:
            g_bias = g_bias.sum_to_size(bias.shape)
        return g_jet, g_weight, g_bias, None, None, None


def _sample(t: Tensor, dims: int, samples: slice) -> Tensor:
    """The ``samples`` of a per-sample tensor (one more dimension than ``dims``), or the shared tensor itself."""
    return t[samples] if t.dim() > dims else t


def _add_outer_products(acc: Tensor, g: Tensor, x: Tensor) -> None:
    """acc += sum over rows of g^T x, for g (S, R, out) and x (S, R, in): into a shared acc (out, in) or a
    per-sample acc (S, out, in)."""
    if acc.dim() == 2:
        acc.addmm_(g.reshape(-1, g.shape[-1]).t(), x.reshape(-1, x.shape[-1]))
    else:
        acc.baddbmm_(g.transpose(1, 2), x)


def _jet_rows(pre: Tensor, bias: Tensor, d: int, trace: bool) -> Tensor:
    """The activation rows (..., k, w) of pre-activation rows (..., k, w) whose value row lacks the bias:
    s, c dz_j, then c d2z_j - s dz_j^2 (or, with ``trace``, c lap z - s sum_j dz_j^2), with s, c the sine and
    cosine of the value row plus ``bias`` (broadcastable to (..., w)). Written row by row so that a compiler
    fuses it into one loop that computes s and c once per element."""
    z = pre[..., 0, :] + bias
    s, c = torch.sin(z), torch.cos(z)
    dz = [pre[..., 1 + j, :] for j in range(d)]
    d2z = [pre[..., r, :] for r in range(1 + d, pre.shape[-2])]
    rows = [s, *(c * x for x in dz)]
    if d2z and trace:
        rows.append(c * d2z[0] - s * sum(x * x for x in dz))
    elif d2z:
        rows += [c * x2 - s * x * x for x, x2 in zip(dz, d2z)]
    return torch.stack(rows, dim=-2)


# The vector-Jacobian product of (s, c dz, c d2z - s dz^2) with respect to (z, dz, d2z), given the output
# gradient rows (g_h, g_dh, g_d2h):
#   g_z   = c (g_h - sum g_d2h dz^2) - s (sum_j g_dh_j dz_j + sum g_d2h d2z)
#   g_dz  = c g_dh - 2 s g_d2h dz        (with trace, the one g_d2h row serves every j)
#   g_d2z = c g_d2h


def _jet_rows_vjp(grad: Tensor, pre: Tensor, bias: Tensor, d: int, trace: bool) -> Tensor:
    """The VJP above: the gradient (..., k, w) of the pre-activation rows, sin and cos recomputed; row by row
    like ``_jet_rows``."""
    z = pre[..., 0, :] + bias
    s, c = torch.sin(z), torch.cos(z)
    dz = [pre[..., 1 + j, :] for j in range(d)]
    d2z = [pre[..., r, :] for r in range(1 + d, pre.shape[-2])]
    g_h, g_dh = grad[..., 0, :], [grad[..., 1 + j, :] for j in range(d)]
    g_d2h = [grad[..., r, :] for r in range(1 + d, grad.shape[-2])]
    sin_part = sum(g * x for g, x in zip(g_dh + g_d2h, dz + d2z))
    if not d2z:
        return torch.stack([c * g_h - s * sin_part, *(c * g for g in g_dh)], dim=-2)
    per_coordinate = g_d2h * d if trace else g_d2h  # with trace, the one Laplacian row's gradient serves every j
    cos_part = g_h - sum(g * x * x for g, x in zip(per_coordinate, dz))
    g_dz = [c * g - 2 * s * g2 * x for g, g2, x in zip(g_dh, per_coordinate, dz)]
    return torch.stack([c * cos_part - s * sin_part, *g_dz, *(c * g for g in g_d2h)], dim=-2)


def _sine_layer_reference(jet: Tensor, weight: Tensor, bias: Tensor, d: int, trace: bool) -> Tensor:
    """What ``_SineJetLayer`` computes, from plain differentiable operations (used to differentiate it twice)."""
    return _jet_rows(_jet_matmul(jet, weight), _row_bias(bias), d, trace)


def _row_bias(bias: Tensor) -> Tensor:
    """A bias (w,) or per-sample (S, w) in the shape that broadcasts against a value row (S, N, w)."""
    return bias.unsqueeze(-2) if bias.dim() == 2 else bias


def _input_jet(coords: Tensor, order: int, trace: bool) -> Tensor:
    """The coordinates as a jet (..., rows, d): value x, first derivatives the identity, second zero."""
    d = coords.shape[-1]
    identity = torch.eye(d, dtype=coords.dtype, device=coords.device)
    rows = [coords.unsqueeze(-2), identity.expand(*coords.shape[:-1], d, d)]
    if order == 2:
        rows.append(coords.new_zeros(*coords.shape[:-1], 1 if trace else d, d))
    return torch.cat(rows, dim=-2)


def siren_derivatives(model: Siren, coords: Tensor, params: dict[str, Tensor] | None = None,
                      shifts: Tensor | None = None, order: int = 2, trace: bool = False
                      ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Values, Jacobian and Hessian diagonal (or Laplacian) of a Siren at ``coords``.

    coords: (..., d), or (B, N, d) with per-sample ``params`` (name -> (B, *shape)) or ``shifts``
        (B, num_sine_layers, hidden), exactly as ``Siren.forward`` takes them.
    order: 1 computes only the Jacobian (the Hessian is returned as None), 2 also the Hessian diagonal.
    trace: with order 2, propagate only the Laplacian (one row instead of d: cheaper) and return it in place
        of the Hessian diagonal, as (..., m).
    Returns y (..., m), jacobian dy_i/dx_j (..., m, d) and hess_diag d^2 y_i/dx_j^2 (..., m, d) (the
    Laplacian (..., m) with ``trace``), or None for the third with order 1.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    d = coords.shape[-1]
    if d != model.config["in_features"]:
        raise ValueError(f"coords have {d} features, the Siren expects {model.config['in_features']}")
    per_sample = shifts is not None or params is not None and any(
        p.dim() == (3 if name.endswith("weight") else 2) for name, p in params.items())
    if per_sample and coords.dim() != 3:
        raise ValueError(f"per-sample params/shifts need coords (B, N, d), got {tuple(coords.shape)}")
    lead = coords.shape[:-1]
    jet = _input_jet(coords, order, trace)
    if not per_sample:  # one block of points (1, P, rows, d) through shared parameters
        jet = jet.reshape(1, -1, *jet.shape[-2:])
    *sine_layers, (weight, bias) = model.effective_parameters(params, shifts)
    for sine_weight, sine_bias in sine_layers:
        jet = _SineJetLayer.apply(jet, sine_weight, sine_bias, d, trace, torch.is_grad_enabled())
    out = _jet_matmul(jet, weight)
    y = (out[..., 0, :] + _row_bias(bias)).reshape(*lead, -1)
    jac = out[..., 1 : 1 + d, :].transpose(-1, -2).reshape(*lead, -1, d)
    if order == 1:
        return y, jac, None
    second = out[..., 1 + d :, :]
    if trace:
        return y, jac, second[..., 0, :].reshape(*lead, -1)
    return y, jac, second.transpose(-1, -2).reshape(*lead, -1, d)
