r"""Neuron names: what the inverse map says about each channel of the importance layer.

Channel n is named by the top knowledge terms of :math:`g(e_n)`, the inverse map applied to the
one-hot importance vector :math:`e_n` (NIWT, ECCV 2018, Sec. 5). With ``relative=True`` the map's
answer for the zero vector is subtracted first, :math:`g(e_n) - g(0)`, which for a linear map is
the channel's own column (the bias, common to every channel, is left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from niwt.checks import as_labels
from niwt.errors import DataError, NotFittedError
from niwt.explain.inverse import InverseMapper
from niwt.explain.text import Term, Vocabulary, as_vocabulary, top_terms

__all__ = ["NeuronName", "name_neurons", "format_neuron_names"]


@dataclass(frozen=True)
class NeuronName:
    """The top knowledge terms of one channel, best first."""

    channel: int
    terms: tuple[Term, ...]

    @property
    def name(self) -> str:
        """The best term's name."""
        return self.terms[0].name

    def to_dict(self) -> dict[str, object]:
        return {"channel": self.channel, "name": self.name, "terms": [t.to_dict() for t in self.terms]}


def name_neurons(
    inverse: InverseMapper,
    vocabulary: Vocabulary | Sequence[str],
    *,
    k: int = 3,
    channels: object | None = None,
    relative: bool = False,
) -> tuple[NeuronName, ...]:
    """Name every channel (or ``channels``) of the importance layer by the inverse map of its one-hot vector.

    Args:
        inverse: a fitted inverse map (importance width K).
        vocabulary: names of the knowledge dimensions, or a :class:`~niwt.explain.text.Vocabulary`.
        k: terms per channel.
        channels: channel indices to name (default: all K).
        relative: subtract the map's answer for the zero vector before ranking.

    Returns:
        One :class:`NeuronName` per channel.
    """
    if not hasattr(inverse, "net_"):
        raise NotFittedError("`inverse` is not fitted yet: call its 'fit' (or load one) before naming neurons")
    n_channels = inverse.n_features_in_
    idx = np.arange(n_channels) if channels is None else as_labels("channels", channels, n_classes=n_channels)
    if idx.size == 0:
        raise DataError("`channels` is empty: name at least one channel")
    onehot = np.zeros((idx.size, n_channels))
    onehot[np.arange(idx.size), idx] = 1.0
    knowledge = inverse.predict(onehot).astype(np.float64)
    if relative:
        knowledge = knowledge - inverse.predict(np.zeros((1, n_channels))).astype(np.float64)
    vocab = as_vocabulary(vocabulary, knowledge.shape[1])
    return tuple(NeuronName(int(c), ts) for c, ts in zip(idx, top_terms(vocab.scores(knowledge), vocab.names, k)))


def format_neuron_names(names: Sequence[NeuronName], limit: int | None = None) -> str:
    """A plain-text table: channel, then its terms with scores."""
    rows = list(names)[:limit] if limit is not None else list(names)
    lines = [f"{'channel':>7}  terms"]
    for n in rows:
        lines.append(f"{n.channel:>7}  " + ", ".join(f"{t.name} ({t.score:+.3f})" for t in n.terms))
    return "\n".join(lines)
