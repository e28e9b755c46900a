"""Numbers published elsewhere and quoted beside niwt's own, labelled as quoted: the baselines on
the xlsa17 features (Xian et al., TPAMI 2018) and NIWT's harmonic means in the paper."""

from __future__ import annotations

__all__ = ["PUBLISHED_GZSL", "PAPER_H", "format_published"]


PUBLISHED_GZSL: dict[str, dict[str, tuple[float, float, float]]] = {
    # (U, S, H) in %, GZSL on the xlsa17 ResNet-101 features, proposed split: Xian et al., TPAMI 2018.
    "AWA2": {"ale": (14.0, 81.8, 23.9), "dem": (30.5, 86.4, 45.1), "eszsl": (5.9, 77.8, 11.0),
             "sae": (1.1, 82.2, 2.2)},
    "CUB": {"ale": (23.7, 62.8, 34.4), "dem": (19.6, 57.9, 29.2), "eszsl": (12.6, 63.8, 21.0),
            "sae": (7.8, 54.0, 13.6)},
}
"""Published baseline numbers on the xlsa17 features, printed beside a feature-mode run, labelled as quoted."""


def format_published(dataset: str, methods: tuple[str, ...]) -> str:
    """The quoted published numbers of ``methods`` on ``dataset`` (empty when none are known)."""
    known = PUBLISHED_GZSL.get(dataset.upper(), {})
    rows = [(m, known[m]) for m in methods if m in known]
    if not rows:
        return ""
    lines = [f"quoted, not measured here: GZSL on {dataset.upper()}'s xlsa17 ResNet-101 features, Xian et al. "
             "TPAMI 2018 (%):"]
    lines += [f"{m + ' (quoted)':<16}{'S':>4} {s:5.1f}{'U':>5} {u:5.1f}{'H':>5} {h:5.1f}" for m, (u, s, h) in rows]
    return "\n".join(lines)


PAPER_H: dict[tuple[str, str, str], dict[str, float]] = {
    # GZSL harmonic mean (%) of NIWT reported in the paper
    # (ECCV 2018, arXiv 1808.02861); VGG16 stands for "vgg", ResNet101 for "resnet".
    ("vgg", "finetuned", "attributes"): {"AWA2": 48.1, "CUB": 37.0},
    ("vgg", "fixed", "attributes"): {"AWA2": 36.1, "CUB": 26.7},
    ("resnet", "finetuned", "attributes"): {"AWA2": 40.5, "CUB": 27.7},
    ("resnet", "fixed", "attributes"): {"AWA2": 27.5, "CUB": 17.3},
    ("vgg", "finetuned", "text"): {"CUB": 23.6},
    ("resnet", "finetuned", "text"): {"CUB": 23.8},
}
"""NIWT's GZSL harmonic mean (%) in the paper, by (network, training mode, knowledge) and dataset."""
