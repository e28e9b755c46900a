"""Images of a finished run explained in memory: for each image and a class, its Grad-CAM map,
the overlay with the class named under it, the words the image's importance for the class points
to (through the run's inverse map) and the importance of each channel, which names its most
important neurons.

Nothing is written: ``niwt explain`` / ``predict --explain`` write these as files
(:func:`niwt.report.run_report.explain_images_of_run`), ``niwt serve`` sends them to its page.
One call of :func:`~niwt.explain.gradcam.layer_importance` gives both the map and the words, as
:func:`~niwt.explain.gradcam.grad_cam` and :func:`~niwt.explain.text.explain_images` compute them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from niwt.errors import DataError
from niwt.explain.gradcam import cam_from_activations, layer_importance
from niwt.explain.names import NeuronName
from niwt.explain.text import EmbeddedVocabulary, ImageExplanation, explain_importances
from niwt.report.overlay import overlay, with_legend
from niwt.rundir import layout
from niwt.runs import LoadedRun

__all__ = ["Explained", "NeuronShare", "display_images", "run_vocabulary", "explain_tensors", "top_neurons"]


def display_images(run: LoadedRun, images: torch.Tensor) -> np.ndarray:
    """``[N, H, W, 3]`` uint8: prepared images as the network sees them, for display (normalisation undone)."""
    t = run.image_transform()
    x = images.detach().float().clone()
    if t.normalize:
        x = x * torch.tensor(t.std).view(1, 3, 1, 1) + torch.tensor(t.mean).view(1, 3, 1, 1)
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def run_vocabulary(run: LoadedRun):  # -> Vocabulary | list[str]
    """Names of the knowledge dimensions; for sentence embeddings (dimensions without names), the
    classes themselves: an explanation then names the class descriptions nearest to it."""
    if run.knowledge_names and all(n.startswith("embedding:") for n in run.knowledge_names):
        return EmbeddedVocabulary(tuple(f"like '{n}'" for n in run.class_names), run.knowledge)
    return list(run.knowledge_names)


@dataclass(frozen=True, eq=False)
class Explained:
    """One image explained for one class.

    Attributes:
        row: the classifier row explained; class_name: its class.
        predicted: the row the run calls the image (:meth:`~niwt.runs.LoadedRun.scores`, the
            run's calibration included, as ``predict``).
        cam: ``[H, W]`` Grad-CAM map in [0, 1].
        importance: ``[K]`` the image's importance for the class at the importance layer
            (Grad-CAM's channel weights: the spatial mean of the gradient).
        words: the top knowledge terms of that importance, through the inverse map.
        shown: ``[H, W, 3]`` uint8, the image as the network saw it.
    """

    row: int
    class_name: str
    predicted: int
    cam: np.ndarray
    importance: np.ndarray
    words: ImageExplanation
    shown: np.ndarray

    @property
    def scale(self) -> int:
        """The nearest-neighbour upscaling that shows a small image at about 128 pixels."""
        return max(1, 128 // self.shown.shape[1])

    def overlay(self) -> np.ndarray:
        """The map over the image (upscaled by :attr:`scale`), with the class and the colour scale under it."""
        return with_legend(overlay(self.shown, self.cam, scale=self.scale), self.class_name)


def explain_tensors(run: LoadedRun, images: torch.Tensor, targets: Sequence[int] | None = None, *,
                    top_k: int = 5) -> list[Explained]:
    """Explain prepared images ``[N, 3, H, W]`` of ``run`` for classifier rows ``targets`` (default:
    each image's arg-max row), in memory.

    Raises:
        DataError: a run without an inverse map, or ``targets`` of another length than the images.
    """
    if run.inverse is None:
        raise DataError(f"{run.path} has no inverse map ({layout.INVERSE_MAP}); rerun it to explain")
    model, layer = run.model, run.model.importance_layer
    predicted = run.scores(images).argmax(1)
    if targets is None:
        rows = predicted
    else:
        if len(targets) != images.shape[0]:
            raise DataError(f"`targets` must give one row per image ({images.shape[0]}), got {len(targets)}")
        rows = torch.as_tensor([int(t) for t in targets], dtype=torch.int64)
    weights, acts, y = layer_importance(model, layer, images, rows)
    cams = cam_from_activations(acts, weights, (int(images.shape[-2]), int(images.shape[-1])))
    terms = explain_importances(weights.cpu().numpy(), run.inverse, run_vocabulary(run), top_k)
    shown = display_images(run, images)
    names = run.row_names
    out = []
    for i, target in enumerate(y.tolist()):
        words = ImageExplanation(i, int(target), names[target], int(predicted[i]), terms[i])
        out.append(Explained(int(target), names[target], int(predicted[i]), cams[i].cpu().numpy(),
                             weights[i].cpu().double().numpy(), words, shown[i]))
    return out


@dataclass(frozen=True)
class NeuronShare:
    """One of an image's most important neurons for a class: its channel, its name, its importance,
    and its share of the image's positive importance for the class (over every channel)."""

    neuron: NeuronName
    importance: float
    share: float

    def to_dict(self) -> dict[str, object]:
        return {"channel": self.neuron.channel, "name": self.neuron.name, "importance": self.importance,
                "share": self.share, "terms": [t.name for t in self.neuron.terms]}


def top_neurons(importance: np.ndarray, names: Sequence[NeuronName], k: int = 5) -> list[NeuronShare]:
    """The ``k`` channels of largest positive importance, largest first, each with its neuron name.

    ``names`` are the run's neuron names (:func:`niwt.report.run_report.neuron_names`), one per channel.
    """
    values = np.asarray(importance, dtype=np.float64)
    total = float(values[values > 0].sum())
    by_channel = {n.channel: n for n in names}
    out = []
    for c in np.argsort(-values, kind="stable").tolist():
        if len(out) >= k or values[c] <= 0:
            break
        if c in by_channel:
            out.append(NeuronShare(by_channel[c], float(values[c]), float(values[c]) / total))
    return out
