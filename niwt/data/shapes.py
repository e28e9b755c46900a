"""The embedded "shapes" world: a small, deterministic zero-shot learning dataset.

Every image shows one object on a dark, noisy background. The object has one value in each of four
independent attribute groups: *shape*, *colour*, *pattern* (drawn inside the object) and *size*.

Every class has a *primary* value per group. Its images show the primary value with probability
``p`` (the class purity for that group, drawn uniformly in ``[purity_min, purity_max]``) and
otherwise a uniformly drawn other value of the group. The class knowledge is therefore continuous:
the expected fraction of the class's images that show each value, concatenated over the groups.

Classes fall into three disjoint groups: *source* classes (a stand-in for ImageNet, used for
pre-training), *seen* classes (labelled training images) and *unseen* classes (test only). Every
primary value of an unseen class is the primary value of at least one seen class, so unseen classes
are new *combinations* of known values, which is what zero-shot transfer can recover.

Example:
    >>> from niwt.data.shapes import ShapesConfig, make_shapes
    >>> data = make_shapes(ShapesConfig(seed=3))
    >>> data.images.shape[1:]
    (32, 32, 3)
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from niwt.data.record import ZSLData
from niwt.data.withhold import check_withhold
from niwt.errors import ConfigError

__all__ = [
    "SHAPES",
    "COLOURS",
    "PATTERNS",
    "SIZES",
    "ATTRIBUTE_GROUPS",
    "COLOUR_RGB",
    "ShapesConfig",
    "make_shapes",
    "render_shape",
]

logger = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "diamond", "cross", "star")
"""Values of the ``shape`` group."""

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white")
"""Values of the ``colour`` group."""

PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "checker")
"""Values of the ``pattern`` group."""

SIZES: tuple[str, ...] = ("small", "large")
"""Values of the ``size`` group."""

ATTRIBUTE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shape", SHAPES),
    ("colour", COLOURS),
    ("pattern", PATTERNS),
    ("size", SIZES),
)
"""The attribute groups, in the column order of ``image_attributes``."""

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (35, 195, 45),
    "blue": (40, 80, 235),
    "yellow": (240, 225, 35),
    "magenta": (225, 45, 215),
    "cyan": (35, 215, 225),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
}
"""The nominal RGB colour (0-255) of every colour value."""

# Radius of the object, as a fraction of the image side, for each size value.
_SIZE_RANGE: dict[str, tuple[float, float]] = {"small": (0.18, 0.23), "large": (0.31, 0.39)}
# Fraction of the object colour kept in the pattern's shade.
_PATTERN_SHADE = 0.45
# Supersampling factor used to anti-alias the object outline.
_SUPERSAMPLE = 4
# Noise on the object, relative to the background noise.
_OBJECT_NOISE = 0.3
_MAX_ATTEMPTS = 1000
_VAL_ATTEMPTS = 20

_PATTERN_ADJECTIVE: dict[str, str] = {
    "solid": "solid",
    "stripes": "striped",
    "dots": "dotted",
    "checker": "checkered",
}

# Synonyms used to write class descriptions.
_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "disc": ("disc", "circle", "round blob", "round shape"),
    "square": ("square", "box", "square block"),
    "triangle": ("triangle", "three-cornered shape", "triangular shape"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "cross": ("cross", "plus sign", "plus-shaped figure"),
    "star": ("star", "five-pointed star", "star shape"),
}
_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "grass-green"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "magenta": ("magenta", "fuchsia", "purple-pink"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "orange": ("orange", "tangerine", "amber"),
    "white": ("white", "snowy", "ivory"),
}
_PATTERN_WORDS: dict[str, tuple[str, ...]] = {
    "solid": ("plain", "solid", "uniformly coloured"),
    "stripes": ("striped", "banded", "stripy"),
    "dots": ("dotted", "spotted", "polka-dot"),
    "checker": ("checkered", "chequered", "checkerboard"),
}
_PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "solid": ("plain and solid", "with no pattern at all", "filled with one flat colour"),
    "stripes": ("covered in stripes", "with dark stripes across it", "painted with parallel bands"),
    "dots": ("with dots on it", "covered in polka dots", "speckled with round spots"),
    "checker": ("with a checkerboard pattern", "covered in a chequered grid", "tiled with little squares"),
}
_SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "large": ("large", "big", "huge"),
}
_TEMPLATES: tuple[str, ...] = (
    "{a_size} {size} {colour} {shape} {phrase}",
    "{a_pattern} {pattern} {colour} {shape}, {size} in size",
    "a picture of {a_size} {size} {shape} that is {colour} and {pattern}",
    "{a_colour} {colour} {shape} {phrase}, rather {size}",
    "the object is {a_size} {size} {pattern} {shape} in {colour}",
    "{a_colour} {colour}, {pattern} {shape} on a dark, noisy background",
    "you can see {a_size} {size} {shape} painted {colour}, {phrase}",
)


@dataclass(frozen=True)
class ShapesConfig:
    """Parameters of the shapes world.

    Attributes:
        seed: seed of the generator; the same seed always gives the same dataset. ``None`` (the
            default): the run's top-level seed in a pipeline, 0 when the world is made on its own.
        image_size: side of the square images in pixels (at least 16).
        n_source: number of source classes (a stand-in for ImageNet); may be 0.
        n_seen: number of seen classes (at least 3).
        n_unseen: number of unseen classes.
        n_val: number of validation classes, drawn among the seen ones (at most ``n_seen - 2``).
        n_source_images: images per source class.
        n_trainval_images: training images per seen class.
        n_test_seen_images: test images per seen class.
        n_test_unseen_images: test images per unseen class.
        purity_min: lower bound of the class purity (chance of the primary value) per group.
        purity_max: upper bound of the class purity per group.
        noise: standard deviation of the background noise, in ``[0, 1]`` intensity units.
        withhold: unseen classes a run leaves out altogether (:func:`~niwt.data.withhold.withhold_classes`):
            the world is made as without it, then they and their images are taken out.
        kind: "shapes" (the dataset kind of a run's `[data]` table).
    """

    seed: int | None = None
    image_size: int = 32
    n_source: int = 20
    n_seen: int = 36
    n_unseen: int = 10
    n_val: int = 8
    n_source_images: int = 60
    n_trainval_images: int = 40
    n_test_seen_images: int = 15
    n_test_unseen_images: int = 30
    purity_min: float = 0.85
    purity_max: float = 1.0
    noise: float = 0.15
    withhold: tuple[str, ...] = ()
    kind: str = "shapes"

    def __post_init__(self) -> None:
        if self.kind != "shapes":
            raise ConfigError(f"ShapesConfig.kind must be 'shapes', got {self.kind!r}")
        check_withhold("ShapesConfig", self)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("kind", "withhold") or f.name == "seed" and value is None:
                continue
            if f.type in ("int", int, "int | None"):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ConfigError(
                        f"ShapesConfig.{f.name} must be an int, got {type(value).__name__} {value!r}"
                    )
                object.__setattr__(self, f.name, int(value))
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    raise ConfigError(
                        f"ShapesConfig.{f.name} must be a float, got {type(value).__name__} {value!r}"
                    )
                if not math.isfinite(float(value)):
                    raise ConfigError(f"ShapesConfig.{f.name} must be finite, got {value!r}")
                object.__setattr__(self, f.name, float(value))
        if self.seed is not None and self.seed < 0:
            raise ConfigError(f"ShapesConfig.seed must be >= 0, got {self.seed}")
        if self.image_size < 16:
            raise ConfigError(f"ShapesConfig.image_size must be >= 16, got {self.image_size}")
        if self.n_source < 0:
            raise ConfigError(f"ShapesConfig.n_source must be >= 0, got {self.n_source}")
        for name in ("n_unseen", "n_val", "n_source_images", "n_trainval_images",
                     "n_test_seen_images", "n_test_unseen_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ShapesConfig.{name} must be a positive int, got {getattr(self, name)}")
        if self.image_size > 512:
            raise ConfigError(f"ShapesConfig.image_size must be <= 512, got {self.image_size}")
        n_images = (self.n_source * self.n_source_images + self.n_seen * (self.n_trainval_images
                    + self.n_test_seen_images) + self.n_unseen * self.n_test_unseen_images)
        held = n_images * self.image_size**2 * 4  # uint8 RGB image + bool mask per pixel
        if held > 4 * 2**30:
            raise ConfigError(f"a shapes world of {n_images:,} images of {self.image_size} px would hold "
                              f"{held / 2**30:.1f} GiB in memory (limit 4 GiB); use fewer images, or stream a large "
                              "world with niwt.data.source.ShapesStream")
        if self.n_seen < 3:
            raise ConfigError(
                f"ShapesConfig.n_seen must be >= 3 (training and validation classes are drawn among them), "
                f"got {self.n_seen}"
            )
        if self.n_val > self.n_seen - 2:
            raise ConfigError(
                f"ShapesConfig.n_val must be at most n_seen - 2 = {self.n_seen - 2} (validation classes "
                f"combine values of at least two training classes), got {self.n_val}"
            )
        if not 0.0 < self.purity_min <= self.purity_max <= 1.0:
            name = "purity_min" if not 0.0 < self.purity_min <= 1.0 else "purity_max"
            raise ConfigError(
                f"ShapesConfig.{name} is out of range: expected 0 < purity_min <= purity_max <= 1, "
                f"got purity_min={self.purity_min}, purity_max={self.purity_max}"
            )
        if not 0.0 <= self.noise <= 1.0:
            raise ConfigError(f"ShapesConfig.noise must lie in [0, 1], got {self.noise}")
        n_combinations = len(SHAPES) * len(COLOURS) * len(PATTERNS)
        n_classes = self.n_source + self.n_seen + self.n_unseen
        if n_classes > n_combinations:
            raise ConfigError(
                f"ShapesConfig.n_source + n_seen + n_unseen must be at most {n_combinations} "
                f"(distinct shape/colour/pattern combinations), got {n_classes}"
            )


def _check_value(argument: str, value: str, allowed: tuple[str, ...]) -> int:
    if value not in allowed:
        raise ConfigError(f"`{argument}` must be one of {list(allowed)}, got {value!r}")
    return allowed.index(value)


def _polygon(cx: float, cy: float, radius: float, n_points: int, start: float,
             inner: float | None = None) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or star when ``inner`` is given), angles in radians."""
    points = []
    steps = 2 * n_points if inner is not None else n_points
    for k in range(steps):
        angle = start + 2.0 * math.pi * k / steps
        r = radius if inner is None or k % 2 == 0 else radius * inner
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def _draw_outline(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float) -> None:
    """Draw the filled outline of ``shape`` (white on black) centred on ``(cx, cy)``."""
    if shape == "disc":
        rr = 0.92 * r
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=255)
    elif shape == "square":
        h = 0.8 * r
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=255)
    elif shape == "triangle":
        # Equilateral, pointing up; its centroid sits slightly below the circumcentre.
        draw.polygon(_polygon(cx, cy + 0.15 * r, 1.12 * r, 3, -math.pi / 2), fill=255)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + 0.8 * r, cy), (cx, cy + r), (cx - 0.8 * r, cy)], fill=255)
    elif shape == "cross":
        w = 0.34 * r
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
    else:  # star
        draw.polygon(_polygon(cx, cy + 0.05 * r, 1.05 * r, 5, -math.pi / 2, inner=0.45), fill=255)


@lru_cache(maxsize=8)
def _grid(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:image_size, 0:image_size].astype(np.float64) + 0.5
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def _pattern_mask(pattern: str, rng: np.random.Generator, image_size: int) -> np.ndarray:
    """Boolean map of the pixels that take the pattern's shade (``False`` everywhere if solid)."""
    xs, ys = _grid(image_size)
    if pattern == "stripes":
        theta = rng.uniform(0.0, math.pi)
        period = max(4.0, image_size / 7.0)
        u = xs * math.cos(theta) + ys * math.sin(theta)
        return np.mod(u / period + rng.uniform(), 1.0) < 0.45
    if pattern == "dots":
        period = max(5.0, image_size / 6.0)
        ox, oy = rng.uniform(0.0, period, size=2)
        dx = np.mod(xs + ox, period) - period / 2
        dy = np.mod(ys + oy, period) - period / 2
        return dx * dx + dy * dy < (0.3 * period) ** 2
    if pattern == "checker":
        cell = max(3.0, image_size / 9.0)
        ox, oy = rng.uniform(0.0, cell, size=2)
        return (np.floor((xs + ox) / cell) + np.floor((ys + oy) / cell)) % 2 == 0
    return np.zeros((image_size, image_size), dtype=bool)


def render_shape(
    shape: str,
    colour: str,
    pattern: str,
    size: str,
    rng: np.random.Generator,
    image_size: int = 32,
    noise: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one object on a dark, noisy background.

    The object's radius is drawn within the range of its ``size`` value and its centre is jittered
    while keeping the object inside the image. The pattern (stripes in a random orientation, dots or
    a checkerboard) is painted inside the object in a dark shade of its colour. Only ``rng`` is used
    for randomness, so the same generator state gives the same image.

    Args:
        shape: one of :data:`SHAPES`.
        colour: one of :data:`COLOURS`.
        pattern: one of :data:`PATTERNS`.
        size: one of :data:`SIZES`.
        rng: the random generator to draw from (advanced in place).
        image_size: side of the square image in pixels (at least 16).
        noise: standard deviation of the background noise in ``[0, 1]`` intensity units.

    Returns:
        ``(image, mask)``: the ``[H, W, 3]`` uint8 RGB image and the ``[H, W]`` bool object mask.

    Raises:
        ConfigError: if a value name is unknown, ``image_size < 16`` or ``noise`` is outside
            ``[0, 1]``.
    """
    _check_value("shape", shape, SHAPES)
    _check_value("colour", colour, COLOURS)
    _check_value("pattern", pattern, PATTERNS)
    _check_value("size", size, SIZES)
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ConfigError(f"`image_size` must be an int >= 16, got {image_size!r}")
    if not 0.0 <= float(noise) <= 1.0:
        raise ConfigError(f"`noise` must lie in [0, 1], got {noise!r}")
    image_size = int(image_size)
    s = image_size

    lo, hi = _SIZE_RANGE[size]
    radius = rng.uniform(lo, hi) * s
    margin = radius + 1.0
    cx = rng.uniform(margin, s - margin)
    cy = rng.uniform(margin, s - margin)

    # Anti-aliased coverage of the outline: drawn at a higher resolution, then box-filtered down.
    big = Image.new("L", (s * _SUPERSAMPLE, s * _SUPERSAMPLE), 0)
    _draw_outline(ImageDraw.Draw(big), shape, cx * _SUPERSAMPLE, cy * _SUPERSAMPLE, radius * _SUPERSAMPLE)
    coverage = np.asarray(big.reduce(_SUPERSAMPLE))
    mask = coverage >= 128
    alpha = coverage[..., None].astype(np.float32) * np.float32(1.0 / 255.0)

    base = np.asarray(COLOUR_RGB[colour], dtype=np.float32) / 255.0
    base = np.clip(base * rng.uniform(0.85, 1.0) + rng.uniform(-0.04, 0.04, size=3), 0.0, 1.0)
    base = base.astype(np.float32)
    obj = np.where(_pattern_mask(pattern, rng, s)[..., None], base * np.float32(_PATTERN_SHADE), base)
    background = rng.uniform(0.03, 0.38, size=3).astype(np.float32)

    # Blend object and background; the noise is weaker on the object than on the background.
    image = background + alpha * (obj - background)
    sigma = np.float32(noise) * (1.0 - np.float32(1.0 - _OBJECT_NOISE) * alpha)
    image += sigma * rng.standard_normal((s, s, 3), dtype=np.float32)
    np.clip(image, 0.0, 1.0, out=image)
    return (image * np.float32(255.0) + np.float32(0.5)).astype(np.uint8), mask


def _covers(primaries: list[list[int]], train: list[int], val: list[int]) -> bool:
    """Whether every primary value of the ``val`` classes is a primary value of a ``train`` class."""
    for g in range(len(primaries[0])):
        known = {primaries[i][g] for i in train}
        if any(primaries[i][g] not in known for i in val):
            return False
    return True


def _choose_val(n_val: int, seen_primaries: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Positions (within the seen classes) of the validation classes, or ``None`` if none found."""
    n_seen = len(seen_primaries)
    prim = seen_primaries.tolist()
    for _ in range(_VAL_ATTEMPTS):
        order = rng.permutation(n_seen).tolist()
        if _covers(prim, order[n_val:], order[:n_val]):
            return np.sort(np.array(order[:n_val], dtype=np.int64))
    # Greedy pass for tight configurations: add classes in random order while the rule holds.
    chosen: list[int] = []
    for c in rng.permutation(n_seen).tolist():
        trial = chosen + [c]
        if _covers(prim, sorted(set(range(n_seen)) - set(trial)), trial):
            chosen = trial
            if len(chosen) == n_val:
                return np.sort(np.array(chosen, dtype=np.int64))
    return None


def _choose_classes(
    config: ShapesConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw the primary values ``[n, 4]`` of the seen, unseen and source classes and the val positions.

    Draws are repeated until every primary value of an unseen class is primary for a seen class and
    every primary value of a validation class is primary for a training class.
    """
    triples = np.array(list(itertools.product(range(len(SHAPES)), range(len(COLOURS)), range(len(PATTERNS)))))
    for _ in range(_MAX_ATTEMPTS):
        order = rng.permutation(len(triples))
        seen_t = triples[order[: config.n_seen]]
        seen_size = rng.integers(len(SIZES), size=config.n_seen)
        seen = np.column_stack([seen_t, seen_size])
        val_pos = _choose_val(config.n_val, seen, rng)
        if val_pos is None:
            continue
        rest = triples[order[config.n_seen:]]
        # Unseen classes combine values that are primary for at least one seen class.
        covered = np.ones(len(rest), dtype=bool)
        for g in range(3):
            covered &= np.isin(rest[:, g], seen_t[:, g])
        candidates = np.flatnonzero(covered)
        if candidates.size < config.n_unseen:
            continue
        pick = rng.choice(candidates, size=config.n_unseen, replace=False)
        unseen_size = rng.choice(np.unique(seen_size), size=config.n_unseen)
        unseen = np.column_stack([rest[pick], unseen_size])
        remaining = np.delete(rest, pick, axis=0)
        source_t = remaining[rng.choice(len(remaining), size=config.n_source, replace=False)]
        source_size = rng.integers(len(SIZES), size=config.n_source)
        source = np.column_stack([source_t, source_size]).reshape(config.n_source, 4)
        return seen, unseen, source, val_pos
    raise ConfigError(
        f"could not draw classes for ShapesConfig.n_seen={config.n_seen}, n_unseen={config.n_unseen}, "
        f"n_val={config.n_val}: unseen and validation classes must combine primary values of seen "
        f"and training classes; raise n_seen or lower n_unseen / n_val"
    )


def _article(word: str) -> str:
    """The indefinite article to put before ``word``."""
    lower = word.lower()
    return "an" if lower[0] in "aeiou" and not lower.startswith(("uni", "use")) else "a"


def _describe(primary: np.ndarray, rng: np.random.Generator) -> tuple[str, ...]:
    """Natural-language descriptions of a class from its primary values."""
    shape, colour = SHAPES[primary[0]], COLOURS[primary[1]]
    pattern, size = PATTERNS[primary[2]], SIZES[primary[3]]
    out = []
    for template in _TEMPLATES:
        words = {
            "shape": _SHAPE_WORDS[shape][rng.integers(len(_SHAPE_WORDS[shape]))],
            "colour": _COLOUR_WORDS[colour][rng.integers(len(_COLOUR_WORDS[colour]))],
            "pattern": _PATTERN_WORDS[pattern][rng.integers(len(_PATTERN_WORDS[pattern]))],
            "phrase": _PATTERN_PHRASES[pattern][rng.integers(len(_PATTERN_PHRASES[pattern]))],
            "size": _SIZE_WORDS[size][rng.integers(len(_SIZE_WORDS[size]))],
        }
        words.update({f"a_{key}": _article(words[key]) for key in ("size", "colour", "pattern")})
        text = template.format(**words)
        out.append(text[0].upper() + text[1:])
    return tuple(out)


def make_shapes(config: ShapesConfig | None = None) -> ZSLData:
    """Generate the shapes world.

    Args:
        config: the generator parameters; ``ShapesConfig()`` when ``None``.

    Returns:
        A :class:`~niwt.data.record.ZSLData` named ``"shapes"`` with images, masks, per-image
        attribute labels, continuous class knowledge (``"group:value"`` dimensions) and per-class
        descriptions.

    Raises:
        ConfigError: if ``config`` is not a :class:`ShapesConfig` or its class counts cannot be met.
    """
    if config is None:
        config = ShapesConfig()
    if not isinstance(config, ShapesConfig):
        raise ConfigError(f"`config` must be a ShapesConfig or None, got {type(config).__name__}")
    start = time.perf_counter()
    structure_seq, text_seq, image_seq = np.random.SeedSequence(config.seed or 0).spawn(3)
    rng = np.random.default_rng(structure_seq)

    seen_p, unseen_p, source_p, val_pos = _choose_classes(config, rng)

    primaries = np.concatenate([source_p, seen_p, unseen_p]).astype(np.int64)
    n_src, n_seen = len(source_p), len(seen_p)
    role = np.array(["source"] * n_src + ["seen"] * n_seen + ["unseen"] * len(unseen_p))
    is_val = np.zeros(len(primaries), dtype=bool)
    is_val[n_src + val_pos] = True
    # Class indices are shuffled so that no split occupies a contiguous block of indices.
    order = rng.permutation(len(primaries))
    primaries, role, is_val = primaries[order], role[order], is_val[order]
    n_classes = len(primaries)

    group_sizes = [len(values) for _, values in ATTRIBUTE_GROUPS]
    purity = rng.uniform(config.purity_min, config.purity_max, size=(n_classes, len(group_sizes)))
    blocks = []
    for g, k in enumerate(group_sizes):
        block = np.repeat(((1.0 - purity[:, g]) / (k - 1))[:, None], k, axis=1)
        block[np.arange(n_classes), primaries[:, g]] = purity[:, g]
        blocks.append(block)
    knowledge = np.concatenate(blocks, axis=1)
    knowledge_names = tuple(f"{group}:{value}" for group, values in ATTRIBUTE_GROUPS for value in values)

    class_names = tuple(
        f"{_PATTERN_ADJECTIVE[PATTERNS[p[2]]]}-{COLOURS[p[1]]}-{SHAPES[p[0]]}" for p in primaries
    )
    text_rng = np.random.default_rng(text_seq)
    descriptions = tuple(_describe(p, text_rng) for p in primaries)

    counts = {
        "source": config.n_source_images,
        "seen": config.n_trainval_images + config.n_test_seen_images,
        "unseen": config.n_test_unseen_images,
    }
    n_images = int(sum(counts[r] for r in role))
    s = config.image_size
    images = np.empty((n_images, s, s, 3), dtype=np.uint8)
    masks = np.empty((n_images, s, s), dtype=bool)
    image_attributes = np.empty((n_images, len(group_sizes)), dtype=np.int64)
    labels = np.empty(n_images, dtype=np.int64)
    split_idx: dict[str, list[np.ndarray]] = {"source": [], "trainval": [], "test_seen": [], "test_unseen": []}

    cursor = 0
    for c, class_seq in enumerate(image_seq.spawn(n_classes)):
        crng = np.random.default_rng(class_seq)
        n = counts[role[c]]
        idx = np.arange(cursor, cursor + n)
        labels[idx] = c
        # Draw each image's values: the primary with probability p, otherwise another value.
        for g, k in enumerate(group_sizes):
            keep = crng.random(n) < purity[c, g]
            other = crng.integers(k - 1, size=n)
            other += other >= primaries[c, g]
            image_attributes[idx, g] = np.where(keep, primaries[c, g], other)
        for i in idx:
            v = image_attributes[i]
            images[i], masks[i] = render_shape(
                SHAPES[v[0]], COLOURS[v[1]], PATTERNS[v[2]], SIZES[v[3]], crng, s, config.noise
            )
        if role[c] == "source":
            split_idx["source"].append(idx)
        elif role[c] == "seen":
            split_idx["trainval"].append(idx[: config.n_trainval_images])
            split_idx["test_seen"].append(idx[config.n_trainval_images:])
        else:
            split_idx["test_unseen"].append(idx)
        cursor += n

    def _cat(key: str) -> np.ndarray:
        parts = split_idx[key]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    classes = np.arange(n_classes)
    data = ZSLData(
        name="shapes",
        class_names=class_names,
        knowledge=knowledge,
        knowledge_names=knowledge_names,
        labels=labels,
        seen_classes=classes[role == "seen"],
        unseen_classes=classes[role == "unseen"],
        train_classes=classes[(role == "seen") & ~is_val],
        val_classes=classes[is_val],
        trainval_idx=_cat("trainval"),
        test_seen_idx=_cat("test_seen"),
        test_unseen_idx=_cat("test_unseen"),
        source_classes=classes[role == "source"],
        source_idx=_cat("source"),
        images=images,
        descriptions=descriptions,
        image_attributes=image_attributes,
        attribute_groups=ATTRIBUTE_GROUPS,
        masks=masks,
    )
    logger.debug(
        "generated shapes world: %d classes, %d images of %dpx in %.2fs",
        n_classes, n_images, s, time.perf_counter() - start,
    )
    return data
