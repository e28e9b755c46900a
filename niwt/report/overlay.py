"""Images with a heat map laid over them (Grad-CAM), as arrays and PNG files or bytes.

The blend is ``(1 - alpha * m) * image + alpha * m * colormap(m)`` per pixel, for a map ``m`` in
[0, 1]: where the map is zero the image shows unchanged.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from niwt.errors import DataError
from niwt.rundir.about import PNG_SOFTWARE

__all__ = ["as_rgb", "overlay", "with_legend", "save_overlay", "png_bytes", "save_png"]


def _to_numpy(value: object) -> np.ndarray:
    detach = getattr(value, "detach", None)
    if callable(detach):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_rgb(image: object) -> np.ndarray:
    """``image`` as ``[H, W, 3]`` uint8: from uint8 ``[H, W, 3]``, or float in [0, 1] ``[H, W, 3]`` / ``[3, H, W]``.

    Raises:
        DataError: for another shape, a float image outside [0, 1] or with NaN.
    """
    arr = _to_numpy(image)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DataError(f"`image` must be [H, W, 3] or [3, H, W], got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"`image` must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise DataError(f"a float `image` must hold finite values in [0, 1], got [{np.nanmin(arr)}, {np.nanmax(arr)}]")
    return (arr * 255.0 + 0.5).astype(np.uint8)


def _upscale(arr: np.ndarray, scale: int) -> np.ndarray:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise DataError(f"`scale` must be an integer >= 1, got {scale!r}")
    return arr if scale == 1 else np.repeat(np.repeat(arr, scale, 0), scale, 1)


def overlay(image: object, cam: object, *, alpha: float = 0.5, colormap: str = "jet", scale: int = 1) -> np.ndarray:
    """Blend a heat map over an image.

    Args:
        image: ``[H, W, 3]`` uint8, or float in [0, 1] ``[H, W, 3]`` / ``[3, H, W]`` (array or tensor).
        cam: ``[H, W]`` map in [0, 1] (array or tensor), same size as the image.
        alpha: weight of the colour where the map is 1, in [0, 1].
        colormap: a matplotlib colormap name.
        scale: integer upscaling (nearest neighbour) of the result, for small images.

    Returns:
        ``[H * scale, W * scale, 3]`` uint8.

    Raises:
        DataError: for shapes that disagree, a map outside [0, 1] or with NaN, or ``alpha`` outside [0, 1].
    """
    from matplotlib import colormaps

    rgb = as_rgb(image).astype(np.float64) / 255.0
    m = _to_numpy(cam).astype(np.float64)
    if m.shape != rgb.shape[:2]:
        raise DataError(f"`cam` must be [H, W] = {rgb.shape[:2]} like the image, got shape {m.shape}")
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise DataError("`cam` must hold finite values in [0, 1]")
    if not 0.0 <= float(alpha) <= 1.0:
        raise DataError(f"`alpha` must lie in [0, 1], got {alpha!r}")
    try:
        cmap = colormaps[colormap]
    except KeyError:
        raise DataError(f"`colormap` must be a matplotlib colormap name, got {colormap!r}") from None
    colour = cmap(m)[..., :3]
    w = float(alpha) * m[..., None]
    out = (1.0 - w) * rgb + w * colour
    return _upscale((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), scale)


def with_legend(image: object, label: str, *, colormap: str = "jet") -> np.ndarray:
    """``image`` (an overlay) with a strip below it: ``label`` (the class the map is for) and the
    colour scale of the map, from low (left) to high (right) importance.

    Returns:
        ``[H + strip, max(W, 160), 3]`` uint8; the image is centred on a white background.

    Raises:
        DataError: for an image :func:`as_rgb` refuses, or an unknown colormap.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont

    rgb = as_rgb(image)
    try:
        cmap = colormaps[colormap]
    except KeyError:
        raise DataError(f"`colormap` must be a matplotlib colormap name, got {colormap!r}") from None
    h, w = rgb.shape[:2]
    width, line = max(w, 160), 12
    canvas = Image.new("RGB", (width, h + 3 * line + 6), "white")
    canvas.paste(Image.fromarray(rgb), ((width - w) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=11)  # Pillow's own font: nothing read from the system
    except (TypeError, OSError):  # a Pillow without FreeType: its bitmap font
        font = ImageFont.load_default()
    text = label if len(label) <= 24 else label[:23] + "…"
    draw.text((2, h + 1), f"map of {text}", fill=(0, 0, 0), font=font)
    bar = (cmap(np.linspace(0.0, 1.0, width - 40))[:, :3] * 255 + 0.5).astype(np.uint8)
    canvas.paste(Image.fromarray(np.repeat(bar[None], line - 4, 0)), (20, h + line + 6))
    draw.text((2, h + 2 * line + 3), "low", fill=(0, 0, 0), font=font)
    draw.text((width - 24, h + 2 * line + 3), "high", fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def png_bytes(image: object, *, scale: int = 1) -> bytes:
    """PNG encoding of an ``[H, W, 3]`` image (see :func:`as_rgb`), upscaled by ``scale``."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", PNG_SOFTWARE)  # niwt's mark: the file is known as niwt's own
    buf = io.BytesIO()
    Image.fromarray(_upscale(as_rgb(image), scale)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(path: str | Path, image: object, *, scale: int = 1) -> Path:
    """Write an ``[H, W, 3]`` image as a PNG file; returns the path."""
    path = Path(path)
    path.write_bytes(png_bytes(image, scale=scale))
    return path


def save_overlay(path: str | Path, image: object, cam: object, *, alpha: float = 0.5, colormap: str = "jet",
                 scale: int = 1) -> Path:
    """Write :func:`overlay` of ``image`` and ``cam`` as a PNG file; returns the path."""
    return save_png(path, overlay(image, cam, alpha=alpha, colormap=colormap, scale=scale))
