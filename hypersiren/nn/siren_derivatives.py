"""Forward-mode derivatives of a SIREN: value, Jacobian and Hessian diagonal in one pass, no double backward.

Every sine layer maps its input and the input's derivatives with respect to the coordinates in closed form.
With ``z = w0 (W x + b)`` and ``h = sin z``, for each coordinate ``j``::

    dz_j  = w0 W dx_j              dh_j  = cos z * dz_j
    d2z_j = w0 W d2x_j             d2h_j = cos z * d2z_j - sin z * dz_j^2

(the bias only enters ``z``). When only the Laplacian is needed, the d second-derivative rows collapse into
one, ``lap h = cos z * lap z - sin z * sum_j dz_j^2``. The value and the derivative rows of a layer travel
together as one *jet* tensor (..., 1 + d [+ d or 1], width), so each layer is a single matrix product. A sine
layer (matrix product and elementwise work) is one custom autograd function with a hand-written backward
pass (block by block over the points on a single-threaded CPU, so the elementwise work stays in cache); it
keeps only the pre-activation jet (recomputing sin and cos), which is what makes this path lighter than
autograd's double backward. Higher derivatives (e.g. meta-learning through a derivative loss) go through a
plain differentiable formulation of the same layer.

Derivatives are taken with respect to the input coordinates; everything is differentiable with respect to the
parameters (the module's own or per-sample ``params``/``shifts``, as in ``Siren.forward``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from hypersiren.nn.siren import Siren


def _jet_matmul(jet: Tensor, weight: Tensor) -> Tensor:
    """``jet W^T`` for every row of a jet (..., k, in) -> (..., k, out). Per-sample weight (B, out, in) goes
    with a jet (B, N, k, in) through one batched matrix product (no copy of W per point)."""
    if weight.dim() == 2:
        return torch.matmul(jet, weight.transpose(0, 1))
    b, n, k, width = jet.shape
    out = torch.bmm(jet.reshape(b, n * k, width), weight.transpose(-1, -2))
    return out.reshape(b, n, k, -1)


# Elements per block of a jet on a single-threaded CPU: a block's jets (pre-activation, activation, their
# gradients and temporaries, 1 MiB each in float32) stay in the core's cache, so each full-size tensor is read
# or written once per pass instead of once per elementwise operation (memory-bound on a 256x256 grid).
_BLOCK_ELEMENTS = 1 << 18


def _blocks(jet: Tensor, width: int):
    """Indices (samples, points) of the blocks covering a jet (B, N, rows, in) of a layer of width ``width``.

    Cache-sized runs of points of one sample on a single-threaded CPU; otherwise the whole jet at once. With
    several threads every operation on a block is a fork and join of the thread pool, which on a busy machine
    costs far more than the cache saves (measured, 2 threads, 256x256: 138 s a step instead of 8 s); a GPU gains nothing
    from blocking and would pay a kernel launch per operation and block.
    """
    if jet.device.type != "cpu" or torch.get_num_threads() > 1:
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
    activation's rows (B, N, k, out).

    Forward and backward run block by block over the points (``_blocks``; one block unless single-threaded
    on CPU), so the matrix product of a block and its elementwise work (each row written once with fused
    multiply-adds) stay in cache; the weight gradient is accumulated over the blocks. Saves the input jet
    (the previous layer's output, kept anyway) and the pre-activation; sin and cos are recomputed in the
    backward pass. When the backward pass is itself being differentiated (``create_graph``) it differentiates
    ``_sine_layer_reference`` instead, so higher derivatives (e.g. meta-learning through a derivative loss)
    work.
    """

    @staticmethod
    def forward(ctx, jet: Tensor, weight: Tensor, bias: Tensor, d: int, trace: bool) -> Tensor:
        pre = jet.new_empty(*jet.shape[:-1], weight.shape[-2])
        out = torch.empty_like(pre)
        for samples, points in _blocks(jet, max(jet.shape[-1], pre.shape[-1])):
            block = pre[samples, points]
            torch.matmul(jet[samples, points].flatten(1, 2), _sample(weight, 2, samples).transpose(-1, -2),
                         out=block.flatten(1, 2))
            _sine_rows(block, _sample(bias, 1, samples).unsqueeze(-2), d, trace, out[samples, points])
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
            return (*(next(grads) if need else None for need in needs), None, None)
        grad = grad.contiguous()
        g_jet = torch.empty_like(jet) if needs[0] else None
        g_weight = torch.zeros_like(weight) if needs[1] else None
        g_bias = bias.new_zeros(jet.shape[0], bias.shape[-1]) if needs[2] else None
        for samples, points in _blocks(jet, max(jet.shape[-1], pre.shape[-1])):
            g_pre = _sine_rows_vjp(grad[samples, points], pre[samples, points], ctx.d, ctx.trace)
            g_flat = g_pre.flatten(1, 2)  # (samples, points * rows, out)
            if g_jet is not None:
                torch.matmul(g_flat, _sample(weight, 2, samples), out=g_jet[samples, points].flatten(1, 2))
            if g_weight is not None:
                _add_outer_products(_sample(g_weight, 2, samples), g_flat, jet[samples, points].flatten(1, 2))
            if g_bias is not None:
                g_bias[samples] += g_pre[..., 0, :].sum(1)
        if g_bias is not None:
            g_bias = g_bias.sum_to_size(bias.shape)
        return g_jet, g_weight, g_bias, None, None


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


def _sine_rows(pre: Tensor, bias: Tensor, d: int, trace: bool, out: Tensor) -> None:
    """The activation rows of one block (n, k, w) written into ``out``: s, c dz, c d2z - s dz^2."""
    z, dz, d2z = pre[..., 0, :].add_(bias), pre[..., 1 : 1 + d, :], pre[..., 1 + d :, :]
    s = torch.sin(z, out=out[..., 0, :]).unsqueeze(-2)
    c = torch.cos(z).unsqueeze(-2)
    torch.mul(dz, c, out=out[..., 1 : 1 + d, :])
    if d2z.shape[-2]:
        torch.mul(d2z, c, out=out[..., 1 + d :, :]).addcmul_(s, _squares(dz, trace), value=-1)


def _sine_layer_reference(jet: Tensor, weight: Tensor, bias: Tensor, d: int, trace: bool) -> Tensor:
    """What ``_SineJetLayer`` computes, from plain differentiable operations (used to differentiate it twice)."""
    pre = _jet_matmul(jet, weight)
    z = pre[..., 0, :] + (bias.unsqueeze(-2) if bias.dim() == 2 else bias)
    dz, d2z = pre[..., 1 : 1 + d, :], pre[..., 1 + d :, :]
    s, c = torch.sin(z).unsqueeze(-2), torch.cos(z).unsqueeze(-2)
    rows = [s, c * dz]
    if d2z.shape[-2]:
        rows.append(c * d2z - s * (dz * dz).sum(-2, keepdim=True) if trace else c * d2z - s * dz * dz)
    return torch.cat(rows, dim=-2)


def _squares(dz: Tensor, trace: bool) -> Tensor:
    """dz_j^2 per coordinate row (..., d, w), or summed over the rows (..., 1, w) when ``trace``."""
    return _row_dot(dz, dz) if trace else dz * dz


def _row_dot(a: Tensor, b: Tensor) -> Tensor:
    """sum_r a_r b_r over the rows of two jets (..., r, w) -> (..., 1, w), as fused multiply-adds (a strided
    reduction over the short row axis is several times slower on CPU)."""
    out = a[..., 0:1, :] * b[..., 0:1, :]
    for r in range(1, a.shape[-2]):
        out.addcmul_(a[..., r : r + 1, :], b[..., r : r + 1, :])
    return out


# The vector-Jacobian product of (s, c dz, c d2z - s dz^2) with respect to (z, dz, d2z), given the output
# gradient rows (g_h, g_dh, g_d2h):
#   g_z   = c (g_h - sum g_d2h dz^2) - s (sum_j g_dh_j dz_j + sum g_d2h d2z)
#   g_dz  = c g_dh - 2 s g_d2h dz        (with trace, the one g_d2h row broadcasts over the d rows)
#   g_d2z = c g_d2h


def _sine_rows_vjp(grad: Tensor, pre: Tensor, d: int, trace: bool) -> Tensor:
    """The VJP above for one block (n, k, w), sin and cos recomputed from ``pre`` (bias included), each output
    row written once."""
    z, dz, d2z = pre[..., 0, :], pre[..., 1 : 1 + d, :], pre[..., 1 + d :, :]
    s, c = torch.sin(z).unsqueeze(-2), torch.cos(z).unsqueeze(-2)
    g_pre = torch.empty_like(grad)
    g_h, g_dh, g_d2h = grad[..., 0:1, :], grad[..., 1 : 1 + d, :], grad[..., 1 + d :, :]
    g_dz = torch.mul(g_dh, c, out=g_pre[..., 1 : 1 + d, :])
    sin_part = _row_dot(g_dh, dz)
    cos_part = g_h
    if d2z.shape[-2]:
        for r in range(d2z.shape[-2]):
            sin_part.addcmul_(g_d2h[..., r : r + 1, :], d2z[..., r : r + 1, :])
        cos_part = g_h - _row_dot(g_d2h, _squares(dz, trace))
        g_dz.addcmul_(g_d2h * s, dz, value=-2)
        torch.mul(g_d2h, c, out=g_pre[..., 1 + d :, :])
    torch.mul(cos_part, c, out=g_pre[..., 0:1, :]).addcmul_(sin_part, s, value=-1)
    return g_pre


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
    last = len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        weight, bias = layer.weight, layer.bias
        if params is not None:
            weight = params.get(f"layers.{i}.weight", weight)
            bias = params.get(f"layers.{i}.bias", bias)
        if i == last:
            out = _jet_matmul(jet, weight)
            y = (out[..., 0, :] + (bias.unsqueeze(1) if bias.dim() == 2 else bias)).reshape(*lead, -1)
            jac = out[..., 1 : 1 + d, :].transpose(-1, -2).reshape(*lead, -1, d)
            if order == 1:
                return y, jac, None
            second = out[..., 1 + d :, :]
            if trace:
                return y, jac, second[..., 0, :].reshape(*lead, -1)
            return y, jac, second.transpose(-1, -2).reshape(*lead, -1, d)
        omega = model.omegas[i]
        if shifts is not None:
            bias = bias + shifts[:, i]
        jet = _SineJetLayer.apply(jet, weight * omega, bias * omega, d, trace)
    raise AssertionError("unreachable")
