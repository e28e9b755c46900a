r"""The fast transfer head of torchvision ResNets: the units after the importance layer, linearised.

A ResNet's head after its importance layer is a chain of residual units (torchvision's
``BasicBlock`` or ``Bottleneck``) followed by global average pooling. In eval mode every unit is
piecewise linear in its input: convolutions, batch norm with running statistics (a per-channel
affine map), ReLUs and the residual add. Once the input is fixed, so is every ReLU's on/off
pattern, and the gradient of a logit :math:`w^\top f(A)` with respect to the activations A is
the transposed chain applied to w:

.. math:: \frac{\partial w^\top f}{\partial A}
   = \Big(\prod_{\text{units, last first}} \big(S + C_1^\top D_1 \cdots C_n^\top D_n\big) M\Big)
     \frac{w}{hw}

where each unit contributes its output ReLU mask M, its branch as transposed convolutions
:math:`C_i^\top` with the batch norm scales and ReLU masks :math:`D_i` between them, and its skip
path S (identity, or the transposed 1x1 convolution and scale of ``downsample``). Summed over
space this is the importance (:mod:`niwt.importance`), and it is linear in w.

:func:`head_cache` runs the units once per pool image and keeps, per image, the activations, the
pooled features and every ReLU mask; :func:`forward_head_shifted` then returns the cached features
and, when differentiated, applies the chain above directly: no forward pass, and one pass of
transposed convolutions per pair instead of a backward pass that keeps its graph for a second
one. Differentiating the importance once more (transfer's gradient with respect to the unseen
rows) runs the same linear chain forwards. The units' batch-norm scales are applied to the
gradient, the masks are multiplied in, and a 1x1 convolution at the head's input is applied after
the spatial sum (a transposed 1x1 convolution commutes with it).

Why not the whole linear map: the importance of image b is :math:`J_b^\top w` with
:math:`J_b \in \mathbb{R}^{D \times K}`, which could be formed once per pool image and make each
step a matrix product. But forming :math:`J_b` takes K (or D) passes of the chain per image (2048
for ResNet-101), 16 MiB each in float32, while a fit of ``max_steps`` steps of ``batch_size`` pairs
costs two passes per pair: the per-pair chain is cheaper unless each pool image is used in about
a thousand pairs or more, and it needs about 1.5 MiB per pool image (ResNet-101 at 224 px, float32)
instead of 16 MiB. The cosine loss is per image, so the Jacobians cannot be summed over the pool.

The cache row of an image is ``[h, w, activations (K h w), features (D), masks...]``; the mask of
every ReLU is stored as 0/1 in the activations' dtype, so that the row stays one tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from niwt.errors import ConfigError, DataError

__all__ = ["head_cache", "forward_head_shifted", "linearisable"]

_HEADER = 2  # h, w of the activations, at the start of every cache row


@dataclass(frozen=True)
class _Unit:
    """One residual unit as a chain: ``branch`` convolutions with their norms (a ReLU after every
    pair but the last), the ``skip`` path (None: identity), then the add and the output ReLU."""

    name: str
    branch: tuple[tuple[nn.Conv2d, nn.Module], ...]
    skip: tuple[nn.Conv2d, nn.Module] | None


def _torchvision_blocks() -> tuple[type[nn.Module], type[nn.Module]]:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return BasicBlock, Bottleneck


def _unit_of(name: str, block: nn.Module) -> _Unit | str:
    """The chain of ``block``, or why it has none (a string)."""
    basic, bottleneck = _torchvision_blocks()
    kind = next((cls for cls in (bottleneck, basic) if isinstance(block, cls)), None)
    if kind is None:
        return f"unit {name!r} is a {type(block).__name__}, not a torchvision BasicBlock or Bottleneck"
    if type(block).forward is not kind.forward:
        return f"unit {name!r} ({type(block).__name__}) overrides the forward of {kind.__name__}"
    if not isinstance(block.relu, nn.ReLU):
        return f"unit {name!r} uses {type(block.relu).__name__} instead of ReLU"
    count = 3 if kind is bottleneck else 2
    branch = tuple((getattr(block, f"conv{i}"), getattr(block, f"bn{i}")) for i in range(1, count + 1))
    skip = None
    if block.downsample is not None:
        ds = block.downsample
        if not (isinstance(ds, nn.Sequential) and len(ds) == 2):
            return f"unit {name!r} has a downsample path other than a convolution and a norm"
        skip = (ds[0], ds[1])
    for conv, norm in (*branch, *([skip] if skip else [])):
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            return f"unit {name!r} has a convolution that is not a plain zero-padded Conv2d ({conv!r})"
        reason = _norm_reason(norm)
        if reason:
            return f"unit {name!r}: {reason}"
    return _Unit(name, branch, skip)


def _norm_reason(norm: nn.Module) -> str | None:
    if type(norm) is not nn.BatchNorm2d:
        return f"{type(norm).__name__} is not a BatchNorm2d"
    if norm.running_var is None:
        return "a BatchNorm2d without running statistics normalises with the batch's own"
    return None


def linearisable(blocks: Sequence[nn.Module]) -> str | None:
    """Why ``blocks`` cannot take the linearised head now (a sentence), or None when they can.

    They can when every block is a torchvision ``BasicBlock`` or ``Bottleneck`` (or a subclass that
    keeps its forward) with plain convolutions and batch norms that have running statistics, and
    every batch norm is in eval mode.
    """
    for i, block in enumerate(blocks):
        unit = _unit_of(str(i), block)
        if isinstance(unit, str):
            return unit
        if any(norm.training for _, norm in (*unit.branch, *([unit.skip] if unit.skip else []))):
            return f"unit {unit.name!r} has a batch norm in training mode"
    return None


def _units(blocks: Sequence[nn.Module]) -> list[_Unit]:
    units = []
    for i, block in enumerate(blocks):
        unit = _unit_of(str(i), block)
        if isinstance(unit, str):
            raise ConfigError(f"the linearised ResNet head cannot take these units: {unit}")
        units.append(unit)
    return units


def _check_eval(units: Sequence[_Unit]) -> None:
    for unit in units:
        for _, norm in (*unit.branch, *([unit.skip] if unit.skip else [])):
            if norm.training:
                raise ConfigError(
                    f"the linearised ResNet head needs its batch norms in eval mode (running statistics), but "
                    f"unit {unit.name!r} has one in training mode; call model.eval() first"
                )


def _scale(norm: nn.Module) -> torch.Tensor:
    """The per-channel factor of a norm in eval mode: ``weight / sqrt(running_var + eps)``."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    return scale.detach().view(1, -1, 1, 1)


def _conv_out(conv: nn.Conv2d, size: tuple[int, int]) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, p, d, k, s in zip(size, conv.padding, conv.dilation, conv.kernel_size, conv.stride)
    )


@dataclass(frozen=True)
class _Layout:
    """Where each part of a cache row lies, for activations of ``channels`` x ``size``."""

    channels: int
    size: tuple[int, int]
    features: int
    out_size: tuple[int, int]
    conv_inputs: tuple[tuple[tuple[int, int], ...], ...]  # per unit: input size of each branch conv
    mask_shapes: tuple[tuple[tuple[int, int, int], ...], ...]  # per unit: one per ReLU, the output's last

    @property
    def width(self) -> int:
        masks = sum(c * h * w for unit in self.mask_shapes for c, h, w in unit)
        return _HEADER + self.channels * self.size[0] * self.size[1] + self.features + masks

    def split(self, cached: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[list[torch.Tensor]]]:
        """Activations ``[N, K, h, w]``, features ``[N, D]`` and masks (per unit) of cache rows."""
        n, k = cached.shape[0], self.channels
        start = _HEADER + k * self.size[0] * self.size[1]
        acts = cached[:, _HEADER:start].reshape(n, k, *self.size)
        features = cached[:, start : start + self.features]
        start += self.features
        masks = []
        for unit in self.mask_shapes:
            masks.append([])
            for c, h, w in unit:
                masks[-1].append(cached[:, start : start + c * h * w].reshape(n, c, h, w))
                start += c * h * w
        return acts, features, masks


def _layout(units: Sequence[_Unit], channels: int, size: tuple[int, int]) -> _Layout:
    conv_inputs, mask_shapes, first = [], [], size
    for unit in units:
        sizes, shapes, at = [], [], size
        for conv, _ in unit.branch:
            sizes.append(at)
            at = _conv_out(conv, at)
            shapes.append((conv.out_channels, *at))
        conv_inputs.append(tuple(sizes))
        mask_shapes.append(tuple(shapes))
        size = at
    features = units[-1].branch[-1][0].out_channels if units else channels
    return _Layout(channels, first, features, size, tuple(conv_inputs), tuple(mask_shapes))


def _layout_of(units: Sequence[_Unit], cached: torch.Tensor, channels: int) -> _Layout:
    if cached.ndim != 2 or cached.shape[0] == 0 or cached.shape[1] < _HEADER:
        raise DataError(f"`cached` must be [N, L] rows (N >= 1) of the linearised ResNet head, "
                        f"got {tuple(cached.shape)}")
    size = (int(cached[0, 0]), int(cached[0, 1]))
    layout = _layout(units, channels, size) if min(size) > 0 else None
    if layout is None or layout.width != cached.shape[1]:
        raise DataError(
            f"`cached` rows of width {cached.shape[1]} do not fit this head (activations of {channels} channels "
            f"at {size[0]}x{size[1]} would need {None if layout is None else layout.width}); compute the cache "
            "with this model's head_cache"
        )
    return layout


@torch.no_grad()
def _run(units: Sequence[_Unit], x: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """Features ``[N, D]`` after the units and the global average pool, and every ReLU's mask.

    The same operations in the same order as the torchvision blocks, so the values are the same.
    """
    masks = []
    for unit in units:
        out, unit_masks = x, []
        for i, (conv, norm) in enumerate(unit.branch):
            out = norm(conv(out))
            if i < len(unit.branch) - 1:
                unit_masks.append((out > 0).to(out.dtype))
                out = torch.relu(out)
        identity = x if unit.skip is None else unit.skip[1](unit.skip[0](x))
        out = out + identity
        unit_masks.append((out > 0).to(out.dtype))
        x = torch.relu(out)
        masks.append(unit_masks)
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), masks


def _conv_t(conv: nn.Conv2d, g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The transposed convolution: gradient w.r.t. the input (of ``size``) of ``conv``."""
    if _is_pointwise(conv) and conv.stride == (1, 1):  # a matrix product (faster than the transposed conv)
        n, _, h, w = g.shape
        out = torch.einsum("oi,bop->bip", conv.weight.detach()[:, :, 0, 0], g.reshape(n, -1, h * w))
        return out.reshape(n, -1, h, w)
    produced = [(o - 1) * s - 2 * p + d * (k - 1) + 1
                for o, s, p, d, k in zip(g.shape[2:], conv.stride, conv.padding, conv.dilation, conv.kernel_size)]
    extra = tuple(n - m for n, m in zip(size, produced))
    return F.conv_transpose2d(g, conv.weight.detach(), None, conv.stride, conv.padding, extra, conv.groups,
                              conv.dilation)


def _is_pointwise(conv: nn.Conv2d) -> bool:
    return conv.kernel_size == (1, 1) and conv.padding == (0, 0) and conv.groups == 1


def _conv_t_summed(conv: nn.Conv2d, g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``_conv_t(conv, g, size)`` summed over space ``[N, C_in]``; for a 1x1 convolution the sum
    comes first (each output position feeds exactly one input position)."""
    if _is_pointwise(conv):
        return g.sum((2, 3)) @ conv.weight.detach()[:, :, 0, 0]
    return _conv_t(conv, g, size).sum((2, 3))


def _head_vjp(units: Sequence[_Unit], layout: _Layout, masks: Sequence[Sequence[torch.Tensor]],
              grad_features: torch.Tensor, summed: bool) -> torch.Tensor:
    """Gradient of ``grad_features . features`` w.r.t. the activations (``[N, K, h, w]``), or its
    spatial sum ``[N, K]`` when ``summed``: the chain of the module docstring, built from
    differentiable operations (so it can be differentiated again, w.r.t. ``grad_features``)."""
    h, w = layout.out_size
    g = grad_features[:, :, None, None].expand(-1, -1, h, w) / (h * w)
    for j in range(len(units) - 1, -1, -1):
        unit, unit_masks, sizes = units[j], masks[j], layout.conv_inputs[j]
        sum_here = summed and j == 0
        g = g * unit_masks[-1]
        if unit.skip is None:
            skip = g.sum((2, 3)) if sum_here else g
        else:
            conv, norm = unit.skip
            scaled = g * _scale(norm)
            skip = _conv_t_summed(conv, scaled, sizes[0]) if sum_here else _conv_t(conv, scaled, sizes[0])
        t = g
        for i in range(len(unit.branch) - 1, -1, -1):
            conv, norm = unit.branch[i]
            if i < len(unit.branch) - 1:
                t = t * unit_masks[i]
            t = t * _scale(norm)
            t = _conv_t_summed(conv, t, sizes[i]) if sum_here and i == 0 else _conv_t(conv, t, sizes[i])
        g = t + skip
    if summed and not units:
        g = g.sum((2, 3))
    return g


class _ShiftedHead(torch.autograd.Function):
    """Features of the head at ``activations + shift``; its backward is the linearised chain."""

    @staticmethod
    def forward(ctx, cached: torch.Tensor, shift: torch.Tensor, units: list[_Unit],  # type: ignore[override]
                layout: _Layout) -> torch.Tensor:
        acts, features, masks = layout.split(cached.detach())
        if bool(shift.any()):  # elsewhere than the cached point: run the units again
            features, masks = _run(units, acts + shift.detach()[:, :, None, None])
        flat = [m for unit in masks for m in unit]
        ctx.units, ctx.layout, ctx.counts = units, layout, [len(unit) for unit in masks]
        ctx.save_for_backward(*flat)
        return features.clone()

    @staticmethod
    def backward(ctx, grad_features: torch.Tensor):  # type: ignore[override]
        flat, masks = list(ctx.saved_tensors), []
        for count in ctx.counts:
            masks.append(flat[:count])
            flat = flat[count:]
        spatial = ctx.needs_input_grad[0]
        g = _head_vjp(ctx.units, ctx.layout, masks, grad_features, summed=not spatial)
        if not spatial:
            return None, g, None, None
        n = g.shape[0]
        grad_cached = torch.cat([g.new_zeros(n, _HEADER), g.reshape(n, -1),
                                 g.new_zeros(n, ctx.layout.width - _HEADER - g[0].numel())], 1)
        return grad_cached, g.sum((2, 3)) if ctx.needs_input_grad[1] else None, None, None


def head_cache(blocks: Sequence[nn.Module], a: torch.Tensor) -> torch.Tensor:
    """Cache rows ``[N, L]`` of the linearised head ``blocks`` -> global average pool, for
    activations ``a`` ``[N, K, h, w]``: ``h, w``, the activations, the pooled features and the
    units' ReLU masks (see the module docstring).

    The activations stay differentiable in the row (the rest is detached).

    Raises:
        ConfigError: for blocks that cannot be linearised (:func:`linearisable`) or a batch norm in
            training mode.
        DataError: for activations that are not ``[N, K, h, w]``.
    """
    units = _units(blocks)
    _check_eval(units)
    if a.ndim != 4:
        raise DataError(f"`a` must be activations [N, K, h, w], got {tuple(a.shape)}")
    features, masks = _run(units, a.detach())
    n = a.shape[0]
    size = a.new_tensor([a.shape[2], a.shape[3]]).expand(n, 2)
    return torch.cat([size, a.reshape(n, -1), features, *(m.reshape(n, -1) for unit in masks for m in unit)], 1)


def forward_head_shifted(blocks: Sequence[nn.Module], cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Pooled features ``[N, D]`` of ``blocks`` at the cached activations with channel k shifted by
    ``shift[:, k]``, from :func:`head_cache` rows.

    The values equal ``avgpool(blocks(a + shift))`` at any shift (at 0 they are the cached ones;
    elsewhere the units run again). Gradients flow to ``shift`` (and to the activations inside
    ``cached``) through the linearised chain, which can itself be differentiated w.r.t. what the
    incoming gradient depends on (transfer's unseen rows); they do not flow to the network's
    parameters, which transfer keeps fixed.

    Raises:
        ConfigError: as :func:`head_cache`.
        DataError: for rows that do not fit this head, or a shift that is not ``[N, K]``.
    """
    units = _units(blocks)
    _check_eval(units)
    channels = units[0].branch[0][0].in_channels if units else shift.shape[1]
    layout = _layout_of(units, cached, channels)
    if shift.shape != (cached.shape[0], channels):
        raise DataError(f"`shift` must be [{cached.shape[0]}, {channels}], got {tuple(shift.shape)}")
    return _ShiftedHead.apply(cached, shift, units, layout)
