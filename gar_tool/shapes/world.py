"""The shapes world: scenes of coloured shapes, rendered with their exact masks.

A :class:`Scene` is a canvas size, a background colour and a list of :class:`Shape` (kind,
colour, size class, bounding box); later shapes are drawn over earlier ones, so shapes may
overlap and each shape's mask is what stays visible of it. :func:`sample_scene` draws a random
scene whose every shape has a clear size class (its visible area lies inside the band of its
class, with gaps between the bands), :func:`render` paints it.

Conventions: pixels, origin top-left, boxes ``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive;
images are ``H×W×3`` uint8; masks ``H×W`` bool. Everything is deterministic given the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: Shape colours and their nominal RGB (each shape is jittered around it).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35), "green": (35, 160, 55), "blue": (35, 75, 215),
    "yellow": (235, 205, 25), "purple": (135, 50, 175), "orange": (245, 125, 15),
}
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "medium", "large")

#: Visible area, as a fraction of the image, that each size class may have. The bands leave
#: gaps, so that the class of every shape is unambiguous. "small" stays under 2 % of the image.
SIZE_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.006, 0.017), "medium": (0.028, 0.06), "large": (0.09, 0.17),
}
#: Regions under this fraction of the image count as small in evaluation splits.
SMALL_FRACTION = 0.02

#: Canvas sides (pixels) scenes are rendered at; width and height are drawn independently.
MIN_SIDE, MAX_SIDE = 112, 336
_JITTER = 18  # +- per channel around the nominal colour
_STAR_INNER = 0.45  # inner / outer radius of the five-pointed star


@dataclass(frozen=True)
class Shape:
    """One shape: ``kind`` in :data:`KINDS`, ``colour`` in :data:`COLOURS`, ``size`` in
    :data:`SIZES`, ``box`` its drawn ``(x1, y1, x2, y2)`` (float pixels, inside the canvas) and
    ``rgb`` the exact fill colour."""

    kind: str
    colour: str
    size: str
    box: tuple[float, float, float, float]
    rgb: tuple[int, int, int]

    @property
    def caption(self) -> str:
        """``"a small red circle"``."""
        return f"a {self.size} {self.colour} {self.kind}"


@dataclass(frozen=True)
class Scene:
    """A canvas of ``width × height`` pixels, ``background`` RGB, ``shapes`` in drawing order,
    and ``texture_seed``, the seed of the background's shading."""

    width: int
    height: int
    background: tuple[int, int, int]
    shapes: tuple[Shape, ...]
    texture_seed: int


@dataclass(frozen=True)
class Rendered:
    """:func:`render`'s result: ``image`` ``(H, W, 3)`` uint8, ``masks`` ``(N, H, W)`` bool (the
    visible pixels of each shape, scene order), ``areas`` ``(N,)`` visible area as a fraction of
    the image and ``centroids`` ``(N, 2)`` ``(x, y)`` of the visible pixels."""

    scene: Scene
    image: np.ndarray
    masks: np.ndarray
    areas: np.ndarray
    centroids: np.ndarray


def shape_polygon(kind: str, box: tuple[float, float, float, float]) -> list[tuple[float, float]] | None:
    """Vertices of a polygonal shape in ``box`` (``None`` for the circle, drawn as an ellipse)."""
    x1, y1, x2, y2 = box
    if kind == "circle":
        return None
    if kind == "square":
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    if kind == "triangle":  # apex up
        return [((x1 + x2) / 2, y1), (x2, y2), (x1, y2)]
    if kind == "star":  # five points, one up
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
        pts = []
        for i in range(10):
            a = -math.pi / 2 + i * math.pi / 5
            rad = r if i % 2 == 0 else r * _STAR_INNER
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {KINDS}")


def _draw(draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, float, float, float], fill) -> None:
    poly = shape_polygon(kind, box)
    if poly is None:
        draw.ellipse(box, fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def _fill_factor(kind: str) -> float:
    """Area of the shape / area of its (square) box."""
    if kind == "circle":
        return math.pi / 4
    if kind == "square":
        return 1.0
    if kind == "triangle":
        return 0.5
    # star: ten triangles (centre, outer, inner) of area r·r_in·sin(36°)/2
    return 10 * 0.5 * 0.25 * _STAR_INNER * math.sin(math.pi / 5)


def render(scene: Scene) -> Rendered:
    """Paint ``scene``: the shaded background, then the shapes in order."""
    h, w = scene.height, scene.width
    rng = np.random.default_rng(scene.texture_seed)
    # a soft linear shading in a random direction (the background is not one flat colour)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h) * rng.uniform(8, 24)
    base = np.array(scene.background, dtype=np.float64)
    canvas = Image.fromarray(np.clip(base + ramp[..., None], 0, 255).round().astype(np.uint8), "RGB")
    ids = Image.new("L", (w, h), 0)  # 0 = background, i + 1 = shape i
    draw, draw_ids = ImageDraw.Draw(canvas), ImageDraw.Draw(ids)
    for i, s in enumerate(scene.shapes):
        _draw(draw, s.kind, s.box, s.rgb)
        _draw(draw_ids, s.kind, s.box, i + 1)
    idmap = np.asarray(ids)
    n = len(scene.shapes)
    masks = np.stack([idmap == i + 1 for i in range(n)]) if n else np.zeros((0, h, w), bool)
    areas = masks.reshape(n, -1).sum(1) / float(h * w)
    cents = np.zeros((n, 2))
    for i in range(n):
        ys, xs = np.nonzero(masks[i])
        if len(xs):
            cents[i] = (xs.mean(), ys.mean())
    return Rendered(scene, np.asarray(canvas), masks, areas, cents)


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    grey = int(rng.integers(190, 240))
    return tuple(int(np.clip(grey + rng.integers(-12, 13), 0, 255)) for _ in range(3))  # type: ignore[return-value]


def _shape(rng: np.random.Generator, w: int, h: int, colour: str | None = None) -> Shape:
    kind = str(rng.choice(KINDS))
    size = str(rng.choice(SIZES))
    colour = colour or str(rng.choice(list(COLOURS)))
    lo, hi = SIZE_BANDS[size]
    # aim inside the band, away from its edges (occlusion only ever shrinks the visible area)
    frac = rng.uniform(lo + 0.35 * (hi - lo), hi - 0.1 * (hi - lo))
    side = math.sqrt(frac * w * h / _fill_factor(kind))
    side = min(side, 0.95 * min(w, h))
    x1 = rng.uniform(0, w - side)
    y1 = rng.uniform(0, h - side)
    rgb = tuple(int(np.clip(c + rng.integers(-_JITTER, _JITTER + 1), 0, 255)) for c in COLOURS[colour])
    return Shape(kind, colour, size, (x1, y1, x1 + side, y1 + side), rgb)  # type: ignore[arg-type]


def scene_ok(r: Rendered, min_visible: float = 0.7) -> bool:
    """Every shape keeps its size class and at least ``min_visible`` of its own drawn area."""
    h, w = r.scene.height, r.scene.width
    for s, area in zip(r.scene.shapes, r.areas):
        lo, hi = SIZE_BANDS[s.size]
        if not lo <= area <= hi:
            return False
        full = _drawn_area(s, w, h)
        if full == 0 or area * w * h < min_visible * full:
            return False
    return True


def _drawn_area(s: Shape, w: int, h: int) -> int:
    img = Image.new("L", (w, h), 0)
    _draw(ImageDraw.Draw(img), s.kind, s.box, 1)
    return int(np.asarray(img).sum())


def sample_scene(rng: np.random.Generator, *, n_shapes: tuple[int, int] = (2, 5),
                 size: tuple[int, int] | None = None, duplicate_colour: float = 0.5,
                 max_tries: int = 200) -> Rendered:
    """A random rendered scene with ``n_shapes[0]..n_shapes[1]`` shapes.

    ``size`` = ``(width, height)`` (default: each side uniform in ``[MIN_SIDE, MAX_SIDE]``, aspect
    ratio at most 2). With probability ``duplicate_colour`` two shapes share a colour (so that
    "same colour" questions have both answers). Scenes whose shapes lose their size class or
    more than 30 % of their area to occlusion are redrawn.
    """
    for _ in range(max_tries):
        if size is None:
            w = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
            h = int(np.clip(rng.integers(MIN_SIDE, MAX_SIDE + 1), w / 2, w * 2))
        else:
            w, h = size
        n = int(rng.integers(n_shapes[0], n_shapes[1] + 1))
        colours = [str(c) for c in rng.choice(list(COLOURS), size=n, replace=n > len(COLOURS))]
        if n >= 2 and rng.random() < duplicate_colour:
            colours[1] = colours[0]
        order = rng.permutation(n)
        shapes = tuple(_shape(rng, w, h, colours[i]) for i in order)
        scene = Scene(w, h, _background(rng), shapes, int(rng.integers(2 ** 31)))
        r = render(scene)
        if scene_ok(r):
            return r
    raise RuntimeError(f"could not place {n_shapes} shapes on a {size} canvas in {max_tries} tries")


__all__ = ["COLOURS", "KINDS", "SIZES", "SIZE_BANDS", "SMALL_FRACTION", "MIN_SIDE", "MAX_SIDE",
           "Shape", "Scene", "Rendered", "render", "sample_scene", "scene_ok", "shape_polygon"]
