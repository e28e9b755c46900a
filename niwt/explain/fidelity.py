r"""How faithful the explanations are, measured against the truth of a world with object masks and
per-image attributes (the shapes world), each beside baselines.

* **Localisation** of Grad-CAM maps :math:`m` (of each image's own class) with the object mask
  :math:`M`: the energy share :math:`\sum m M / \sum m` and the pointing game (the map's maximum
  falls inside the mask), for seen and unseen images; beside the mask's share of the image (what a
  uniform map scores) and a random map (uniform noise at the layer's resolution, upsampled the same
  way).
* **Textual precision@k**: the share of the top-k terms of an image's explanation that are true
  attributes of the image (its value in every group, named ``"group:value"``); beside k random
  names, the top-k terms of the explained class's knowledge vector (the class prior) and the k
  attribute values most frequent among the images.
* **Neuron names against network dissection** (Bau et al., CVPR 2017): channel n's top-activation
  region is where its upsampled activation exceeds its ``quantile`` over the dataset; attribute a's
  region is the object mask of the images that have a. The IoU of the two over the dataset ranks
  the attributes per channel; a name agrees when its top term is among the channel's ``top``
  best-IoU attributes. Beside names permuted across channels and the chance rate ``top / A``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from niwt.checks import as_labels, as_matrix
from niwt.errors import ConfigError, DataError
from niwt.explain.gradcam import cam_from_activations, layer_importance, scale_maps
from niwt.explain.inverse import InverseMapper
from niwt.explain.names import NeuronName
from niwt.explain.text import Vocabulary, as_vocabulary, explain_importances, top_terms

__all__ = ["Localisation", "TextPrecision", "Dissection", "FidelityReport", "fidelity", "attribute_names",
           "attribute_indicator", "localisation_scores", "dissect"]

log = logging.getLogger(__name__)


class _Record:
    """A frozen result record of plain fields: ``to_dict`` is its fields."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Localisation(_Record):
    """Grad-CAM against object masks for one group of images (means over its images)."""

    group: str
    n: int
    energy_in_mask: float
    pointing: float
    mask_share: float
    random_energy: float
    random_pointing: float


@dataclass(frozen=True)
class TextPrecision(_Record):
    """Precision@k of textual explanations against true image attributes (None: baseline not computed)."""

    group: str
    n: int
    k: int
    precision: float
    random: float
    class_prior: float | None
    most_frequent: float


@dataclass(frozen=True)
class Dissection(_Record):
    """Agreement of neuron names with network dissection.

    Attributes:
        n_channels: channels scored (named and active somewhere); n_dead: channels left out because
            they never exceed their threshold; top: best-IoU attributes a name may hit;
        quantile: activation quantile of the top region; agreement: share of scored channels whose
        name is among their ``top`` best-IoU attributes; random: the same for names permuted across
        channels (mean over permutations); chance: ``top / A``; mean_best_iou: mean over scored
        channels of their best IoU.
    """

    n_channels: int
    n_dead: int
    top: int
    quantile: float
    agreement: float
    random: float
    chance: float
    mean_best_iou: float


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class FidelityReport:
    """The measures of :func:`fidelity`, each beside its baselines."""

    localisation: tuple[Localisation, ...]
    text: tuple[TextPrecision, ...]
    dissection: Dissection | None

    def to_dict(self) -> dict[str, object]:
        return {"localisation": [x.to_dict() for x in self.localisation], "text": [x.to_dict() for x in self.text],
                "dissection": None if self.dissection is None else self.dissection.to_dict()}

    def rows(self) -> list[dict[str, object]]:
        """One flat row per measure: ``measure``, ``n``, ``network``, ``baselines`` (text)."""
        rows: list[dict[str, object]] = []
        for loc in self.localisation:
            rows.append({"measure": f"Grad-CAM energy in mask ({loc.group})", "n": loc.n,
                         "network": _f(loc.energy_in_mask),
                         "baselines": f"mask share {_f(loc.mask_share)}, random map {_f(loc.random_energy)}"})
            rows.append({"measure": f"pointing game ({loc.group})", "n": loc.n, "network": _f(loc.pointing),
                         "baselines": f"mask share {_f(loc.mask_share)}, random map {_f(loc.random_pointing)}"})
        for t in self.text:
            rows.append({"measure": f"text precision@{t.k} ({t.group})", "n": t.n, "network": _f(t.precision),
                         "baselines": f"random {_f(t.random)}, class prior {_f(t.class_prior)}, "
                                      f"most frequent {_f(t.most_frequent)}"})
        d = self.dissection
        if d is not None:
            rows.append({"measure": f"neuron name in top-{d.top} dissection IoU", "n": d.n_channels,
                         "network": _f(d.agreement),
                         "baselines": f"permuted names {_f(d.random)}, chance {_f(d.chance)}"})
        return rows

    def format_table(self) -> str:
        """A plain-text table of :meth:`rows`."""
        rows = self.rows()
        width = max([len("measure")] + [len(str(r["measure"])) for r in rows])
        lines = [f"{'measure':<{width}}  {'n':>5}  {'network':>7}  baselines"]
        for r in rows:
            lines.append(f"{r['measure']:<{width}}  {r['n']:>5}  {r['network']:>7}  {r['baselines']}")
        return "\n".join(lines)


def attribute_names(attribute_groups: Sequence[tuple[str, Sequence[str]]]) -> tuple[str, ...]:
    """``"group:value"`` for every value of every group, in order (the shapes world's knowledge names)."""
    return tuple(f"{group}:{value}" for group, values in attribute_groups for value in values)


def attribute_indicator(image_attributes: object, attribute_groups: Sequence[tuple[str, Sequence[str]]]) -> np.ndarray:
    """``[N, A]`` bool: image i has attribute value a (columns as :func:`attribute_names`).

    Raises:
        DataError: for a shape other than ``[N, G]`` or a value index outside its group.
    """
    attrs = np.asarray(image_attributes)
    sizes = [len(values) for _, values in attribute_groups]
    if attrs.ndim != 2 or attrs.shape[1] != len(sizes):
        raise DataError(f"`image_attributes` must be [N, {len(sizes)}] (one value per group), got {attrs.shape}")
    if attrs.size and not np.issubdtype(attrs.dtype, np.integer):
        raise DataError(f"`image_attributes` must hold integer value indices, got dtype {attrs.dtype}")
    out = np.zeros((attrs.shape[0], sum(sizes)), dtype=bool)
    offset = 0
    for g, size in enumerate(sizes):
        col = attrs[:, g]
        if col.size and (col.min() < 0 or col.max() >= size):
            raise DataError(f"`image_attributes[:, {g}]` must lie in [0, {size}) for group "
                            f"{attribute_groups[g][0]!r}, got [{col.min()}, {col.max()}]")
        out[np.arange(attrs.shape[0]), offset + col] = True
        offset += size
    return out


def localisation_scores(cams: torch.Tensor, masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    r"""Per image: energy share :math:`\sum m M / \sum m` (0 for an all-zero map) and pointing hit (0/1)."""
    m = cams.flatten(1).double()
    mask = masks.flatten(1).to(m.dtype)
    total = m.sum(1)
    energy = torch.where(total > 0, (m * mask).sum(1) / total.clamp_min(1e-300), torch.zeros_like(total))
    hit = mask.gather(1, m.argmax(1, keepdim=True))[:, 0] * (total > 0).to(m.dtype)
    return energy.numpy(), hit.numpy()


def _random_localisation(shape: tuple[int, int], masks: torch.Tensor, draws: int, gen: torch.Generator,
                         ) -> tuple[float, float]:
    n, size = masks.shape[0], tuple(masks.shape[1:])
    energy, hit = [], []
    for _ in range(draws):
        noise = torch.rand((n, 1, *shape), generator=gen, dtype=torch.float64)
        up = nn.functional.interpolate(noise, size=size, mode="bilinear", align_corners=False)[:, 0]
        e, h = localisation_scores(scale_maps(up), masks)
        energy.append(e.mean())
        hit.append(h.mean())
    return float(np.mean(energy)), float(np.mean(hit))


def dissect(activations: torch.Tensor, masks: object, concepts: object, quantile: float = 0.95,
            chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """IoU over the dataset between each channel's top-activation region and each concept's region.

    Args:
        activations: ``[N, K, h, w]`` activations, upsampled bilinearly to the mask size.
        masks: ``[N, H, W]`` bool object masks.
        concepts: ``[N, A]`` bool: image i shows concept a (its region is then the object mask).
        quantile: a channel's region is where it exceeds this quantile of its values over the dataset.
        chunk: channels upsampled at once (memory: ``N * chunk * H * W`` floats).

    Returns:
        ``(iou [K, A], active [K])``: ``active`` is False for a channel whose region is empty.
    """
    if not 0.0 < float(quantile) < 1.0:
        raise ConfigError(f"`quantile` must lie in (0, 1), got {quantile!r}")
    mask = torch.as_tensor(np.asarray(masks, dtype=bool))
    conc = torch.as_tensor(np.asarray(concepts, dtype=np.float64))
    n, k = activations.shape[:2]
    if mask.ndim != 3 or mask.shape[0] != n or conc.shape[0] != n:
        raise DataError(f"`masks` must be [N={n}, H, W] and `concepts` [N={n}, A]; got {tuple(mask.shape)} and "
                        f"{tuple(conc.shape)}")
    size = tuple(mask.shape[1:])
    area = mask.flatten(1).sum(1).double()
    concept_area = (area[:, None] * conc).sum(0)
    iou = np.zeros((k, conc.shape[1]))
    active = np.zeros(k, dtype=bool)
    rank = None
    for start in range(0, k, chunk):
        a = activations[:, start : start + chunk].detach().double().cpu()
        up = nn.functional.interpolate(a, size=size, mode="bilinear", align_corners=False)
        flat = up.transpose(0, 1).reshape(up.shape[1], -1)
        rank = rank or max(1, min(flat.shape[1], int(np.ceil(float(quantile) * flat.shape[1]))))
        thr = flat.kthvalue(rank, dim=1).values
        top = up > thr[None, :, None, None]
        inside = (top & mask[:, None]).flatten(2).sum(2).double()  # [N, c]
        region = top.flatten(2).sum(2).double().sum(0)  # [c]
        inter = inside.T @ conc  # [c, A]
        union = region[:, None] + concept_area[None, :] - inter
        iou[start : start + a.shape[1]] = (inter / union.clamp_min(1e-12)).numpy()
        active[start : start + a.shape[1]] = (region > 0).numpy()
    return iou, active


def _agreement(iou: np.ndarray, columns: np.ndarray, top: int) -> float:
    """Share of rows whose named column (``-1``: a name that is no attribute) is among their ``top`` best."""
    best = np.argsort(-iou, axis=1, kind="stable")[:, :top]
    return float(np.mean([(c >= 0) and (c in row) for c, row in zip(columns, best)]))


def _dissection(activations: torch.Tensor, masks: np.ndarray, indicator: np.ndarray, attrs: tuple[str, ...],
                names: Sequence[NeuronName], top: int, quantile: float, draws: int, gen: np.random.Generator,
                ) -> Dissection | None:
    k = activations.shape[1]
    named = [n for n in names if 0 <= n.channel < k]
    if len(named) != len(names):
        raise DataError(f"`names` name channels outside the layer's {k} channels")
    if not named:
        return None
    iou, active = dissect(activations, masks, indicator, quantile)
    keep = [n for n in named if active[n.channel]]
    if not keep:
        log.warning("dissection: every named channel is inactive; no agreement computed")
        return None
    column = {a: j for j, a in enumerate(attrs)}
    rows = iou[[n.channel for n in keep]]
    cols = np.array([column.get(n.name, -1) for n in keep])
    top = min(top, len(attrs))
    permuted = [_agreement(rows, gen.permutation(cols), top) for _ in range(draws)]
    return Dissection(n_channels=len(keep), n_dead=len(named) - len(keep), top=top, quantile=float(quantile),
                      agreement=_agreement(rows, cols, top), random=float(np.mean(permuted)),
                      chance=top / len(attrs), mean_best_iou=float(rows.max(1).mean()))


def _precision(terms: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per image: share of its term columns ``terms`` ``[N, k]`` that are true (``truth`` ``[N, V]`` bool)."""
    return np.take_along_axis(truth, terms, axis=1).mean(1)


def _text_scores(group: str, rows: np.ndarray, terms: np.ndarray, truth: np.ndarray,
                 prior_terms: np.ndarray | None, draws: int, gen: np.random.Generator) -> TextPrecision:
    """Precision@k of ``terms`` ``[N, k]`` on images ``rows``, beside random, class-prior and frequency terms."""
    t = truth[rows]
    n, v = t.shape
    k = terms.shape[1]
    random = np.mean([_precision(np.argsort(gen.random((n, v)), axis=1)[:, :k], t).mean() for _ in range(draws)])
    frequent = np.broadcast_to(np.argsort(-t.sum(0), kind="stable")[:k], (n, k))
    prior = None if prior_terms is None else float(_precision(prior_terms[rows], t).mean())
    return TextPrecision(group=group, n=int(n), k=int(k), precision=float(_precision(terms[rows], t).mean()),
                         random=float(random), class_prior=prior, most_frequent=float(_precision(frequent, t).mean()))


def _check_inputs(images: object, labels: object, masks: object, image_attributes: object,
                  unseen: object | None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    shape = tuple(getattr(images, "shape", ()))
    n = int(shape[0]) if len(shape) == 4 else -1
    if n < 1:
        raise DataError(f"`images` must be a non-empty [N, C, H, W] batch, got shape {shape}")
    labels = as_labels("labels", labels, length=n)
    mask = np.asarray(masks)
    expected = (n, *shape[2:])
    if mask.shape != expected or mask.dtype != np.bool_:
        raise DataError(f"`masks` must be a bool array of shape {expected} (one per image), got {mask.dtype} "
                        f"{mask.shape}")
    if np.shape(image_attributes)[:1] != (n,):
        raise DataError(f"`image_attributes` must have one row per image ({n}), got {np.shape(image_attributes)}")
    split = np.zeros(n, dtype=bool) if unseen is None else np.asarray(unseen)
    if split.shape != (n,) or split.dtype != np.bool_:
        raise DataError(f"`unseen` must be a bool array [{n}], got {split.dtype} {split.shape}")
    return n, labels, mask, split


def fidelity(
    model: nn.Module,
    layer: nn.Module | str,
    images: object,
    labels: object,
    masks: object,
    image_attributes: object,
    *,
    attribute_groups: Sequence[tuple[str, Sequence[str]]],
    inverse: InverseMapper,
    names: Sequence[NeuronName] = (),
    vocabulary: Vocabulary | Sequence[str] | None = None,
    class_knowledge: object | None = None,
    unseen: object | None = None,
    k: int = 3,
    top: int = 3,
    quantile: float = 0.95,
    draws: int = 20,
    batch_size: int | None = None,
    seed: int = 0,
) -> FidelityReport:
    """Grad-CAM localisation, textual precision@k and neuron-name agreement, each beside baselines.

    One pass of :func:`niwt.importance.neuron_importance` (of each image's class ``labels[i]``)
    gives the maps, the importances explained in words and the activations dissected.

    Args:
        model: a classifier whose logit rows ``labels`` index (seen rows, then unseen rows).
        layer: the importance layer (the one ``inverse`` and ``names`` were made at).
        images: ``[N, 3, H, W]`` float images.
        labels: ``[N]`` logit row of each image's class.
        masks: ``[N, H, W]`` bool object masks.
        image_attributes: ``[N, G]`` value index per attribute group of every image.
        attribute_groups: ``(group, values)`` per group (``ZSLData.attribute_groups``).
        inverse: a fitted inverse map at ``layer``.
        names: neuron names (:func:`~niwt.explain.names.name_neurons`); empty: no dissection.
        vocabulary: names of the inverse map's outputs (default: ``"group:value"`` of the groups).
        class_knowledge: ``[R, d]`` knowledge of every logit row, for the class-prior baseline.
        unseen: ``[N]`` bool, images of unseen classes (scored apart from the others).
        k: terms per textual explanation.
        top: best-IoU attributes a neuron name may hit.
        quantile: activation quantile of a channel's top region.
        draws: random draws behind every random baseline.
        batch_size: stream the images in batches of this size.
        seed: seed of the random baselines.

    Returns:
        A :class:`FidelityReport`.
    """
    n, labels, mask, split = _check_inputs(images, labels, masks, image_attributes, unseen)
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ConfigError(f"`draws` must be an integer >= 1, got {draws!r}")
    indicator = attribute_indicator(image_attributes, attribute_groups)
    attrs = attribute_names(attribute_groups)
    vocab = as_vocabulary(attrs if vocabulary is None else vocabulary, inverse.n_outputs_)
    column = {a: j for j, a in enumerate(attrs)}
    known = np.array([column.get(name, -1) for name in vocab.names])
    truth = np.where(known >= 0, indicator[:, np.maximum(known, 0)], False)
    weights, acts, _ = layer_importance(model, layer, images, labels, batch_size=batch_size)
    cams = cam_from_activations(acts, weights, mask.shape[1:]).cpu()
    energy, hit = localisation_scores(cams, torch.from_numpy(mask))
    terms = np.array([[t.index for t in ts] for ts in explain_importances(weights.cpu().numpy(), inverse, vocab, k)])
    prior_terms = None
    if class_knowledge is not None:
        prior = as_matrix("class_knowledge", class_knowledge)
        if labels.max() >= prior.shape[0]:
            raise DataError(f"`class_knowledge` must have a row for every logit row in `labels` (up to "
                            f"{labels.max()}), got {prior.shape[0]} rows")
        scores = vocab.scores(prior[labels])
        prior_terms = np.array([[t.index for t in ts] for ts in top_terms(scores, vocab.names, terms.shape[1])])
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    groups = [("seen", ~split), ("unseen", split)] if split.any() else [("all", ~split)]
    localisation, text = [], []
    for group, sel in groups:
        rows = np.flatnonzero(sel)
        if rows.size == 0:
            continue
        r_energy, r_hit = _random_localisation(tuple(acts.shape[2:]), torch.from_numpy(mask[rows]), draws, gen)
        localisation.append(Localisation(group, int(rows.size), float(energy[rows].mean()), float(hit[rows].mean()),
                                         float(mask[rows].mean()), r_energy, r_hit))
        text.append(_text_scores(group, rows, terms, truth, prior_terms, draws, rng))
    dissection = _dissection(acts, mask, indicator, attrs, names, top, quantile, draws, rng) if names else None
    report = FidelityReport(tuple(localisation), tuple(text), dissection)
    log.info("fidelity over %d images:\n%s", n, report.format_table())
    return report
