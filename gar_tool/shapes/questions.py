"""Questions about shapes-world scenes, with their answers computed from the scene.

Every :class:`Item` names its regions ``<Prompt0>``, ``<Prompt1>``, … in the order of
``Item.shapes`` (indices into the scene's shapes) and has one correct answer:

* single region — ``colour``, ``shape``, ``size`` (and the region caption, ``"a small red
  circle"``, for ``gar describe``);
* two regions — ``left``: which is further left; ``above``: which is higher up; ``bigger``:
  which has the larger visible area; ``same-colour`` / ``same-shape``: yes or no; ``count``:
  how many of the two have a given colour or shape.

Each question exists in an open form (short answer: ``"red"``, ``"yes"``, ``"2"``) and a
multiple-choice form in GAR-Bench's VQA format (``question``, ``choices`` ``["A. …", …]``,
``answer`` a letter; the question GAR sees is built by
:func:`gar_tool.evaluation.gar_bench.vqa_question`). Geometric questions are only asked when the
answer is clear: centroids at least :data:`MIN_OFFSET` of the image apart, areas at least
:data:`MIN_AREA_RATIO` apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from gar_tool.regions.refs import prompt_token
from gar_tool.shapes.world import COLOURS, KINDS, SIZES, Rendered

MIN_OFFSET = 0.12
MIN_AREA_RATIO = 1.6
LETTERS = "ABCDEFGH"

#: Question kinds by number of regions.
SINGLE_KINDS = ("colour", "shape", "size")
PAIR_KINDS = ("left", "above", "bigger", "same-colour", "same-shape", "count")

_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars"}


@dataclass(frozen=True)
class Item:
    """One question about a scene.

    Attributes:
        kind: question kind (see the module doc).
        shapes: scene shape indices; ``shapes[k]`` is ``<Prompt{k}>``.
        open_question / open_answer: the short-answer form.
        question / choices / answer: the multiple-choice form (``answer`` is a letter).
    """

    kind: str
    shapes: tuple[int, ...]
    open_question: str
    open_answer: str
    question: str
    choices: tuple[str, ...]
    answer: str

    @property
    def arity(self) -> int:
        return len(self.shapes)


P0, P1, P2 = prompt_token(0), prompt_token(1), prompt_token(2)


def _choice_set(rng: np.random.Generator, right: str, options: list[str], k: int | None = None,
                keep_order: bool = False) -> tuple[tuple[str, ...], str]:
    """``(choices, letter)``: ``right`` among ``k`` options (all when ``k`` is None)."""
    others = [o for o in options if o != right]
    if k is not None:
        others = [str(o) for o in rng.choice(others, size=k - 1, replace=False)]
    opts = [right] + others
    if keep_order:
        opts = sorted(opts, key=options.index)
    else:
        opts = [opts[i] for i in rng.permutation(len(opts))]
    letter = LETTERS[opts.index(right)]
    return tuple(f"{LETTERS[i]}. {o}" for i, o in enumerate(opts)), letter


def _yes_no(rng: np.random.Generator, yes: bool) -> tuple[tuple[str, ...], str]:
    return _choice_set(rng, "yes" if yes else "no", ["yes", "no"])


def single_items(r: Rendered, i: int, rng: np.random.Generator) -> list[Item]:
    """The colour, shape and size questions about shape ``i``."""
    s = r.scene.shapes[i]
    out = []
    ch, a = _choice_set(rng, s.colour, list(COLOURS), k=4)
    out.append(Item("colour", (i,), f"What colour is {P0}?", s.colour, f"What colour is {P0}?", ch, a))
    ch, a = _choice_set(rng, s.kind, list(KINDS))
    out.append(Item("shape", (i,), f"What shape is {P0}?", s.kind, f"What shape is {P0}?", ch, a))
    ch, a = _choice_set(rng, s.size, list(SIZES), keep_order=True)
    out.append(Item("size", (i,), f"How big is {P0}?", s.size, f"How big is {P0}?", ch, a))
    return out


def _which(rng: np.random.Generator, first: bool) -> tuple[tuple[str, ...], str]:
    return _choice_set(rng, P0 if first else P1, [P0, P1])


def pair_items(r: Rendered, i: int, j: int, rng: np.random.Generator) -> list[Item]:
    """The two-region questions about shapes ``i`` (``<Prompt0>``) and ``j`` (``<Prompt1>``) whose
    answer is clear."""
    si, sj = r.scene.shapes[i], r.scene.shapes[j]
    (xi, yi), (xj, yj) = r.centroids[i], r.centroids[j]
    w, h = r.scene.width, r.scene.height
    out = []
    if abs(xi - xj) >= MIN_OFFSET * w:
        ch, a = _which(rng, xi < xj)
        out.append(Item("left", (i, j), f"Is {P0} to the left of {P1}?", "yes" if xi < xj else "no",
                        f"Which is further to the left, {P0} or {P1}?", ch, a))
    if abs(yi - yj) >= MIN_OFFSET * h:
        ch, a = _which(rng, yi < yj)
        out.append(Item("above", (i, j), f"Is {P0} above {P1}?", "yes" if yi < yj else "no",
                        f"Which is higher up, {P0} or {P1}?", ch, a))
    ai, aj = r.areas[i], r.areas[j]
    if max(ai, aj) >= MIN_AREA_RATIO * min(ai, aj):
        ch, a = _which(rng, ai > aj)
        out.append(Item("bigger", (i, j), f"Is {P0} bigger than {P1}?", "yes" if ai > aj else "no",
                        f"Which is bigger, {P0} or {P1}?", ch, a))
    same = si.colour == sj.colour
    ch, a = _yes_no(rng, same)
    q = f"Are {P0} and {P1} the same colour?"
    out.append(Item("same-colour", (i, j), q, "yes" if same else "no", q, ch, a))
    same = si.kind == sj.kind
    ch, a = _yes_no(rng, same)
    q = f"Are {P0} and {P1} the same shape?"
    out.append(Item("same-shape", (i, j), q, "yes" if same else "no", q, ch, a))
    out.append(count_item(r, (i, j), rng))
    return out


def count_item(r: Rendered, idx: tuple[int, ...], rng: np.random.Generator) -> Item:
    """"How many of <Prompt0> and <Prompt1> are red / circles?" over the shapes ``idx`` (a colour
    or kind drawn so that every count from zero to all of them occurs)."""
    shapes = [r.scene.shapes[k] for k in idx]
    by_colour = rng.random() < 0.5
    present = [s.colour if by_colour else s.kind for s in shapes]
    # half the time any value (so that zero happens), else one the named shapes have
    value = str(rng.choice(list(COLOURS) if by_colour else list(KINDS))) if rng.random() < 0.5 \
        else present[int(rng.integers(len(present)))]
    n = sum(v == value for v in present)
    attr = value if by_colour else _PLURAL[value]
    names = [prompt_token(k) for k in range(len(idx))]
    listed = " and ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + " and " + names[-1]
    q = f"How many of {listed} are {attr}?"
    counts = [str(c) for c in range(len(idx) + 1)]
    ch, a = _choice_set(rng, str(n), counts, keep_order=True)
    return Item("count", tuple(idx), q, str(n), q, ch, a)


def scene_items(r: Rendered, rng: np.random.Generator, *, pairs: int = 2) -> list[Item]:
    """Questions about one scene: the single-region ones for every shape and the two-region ones
    of up to ``pairs`` random ordered pairs."""
    n = len(r.scene.shapes)
    out = [it for i in range(n) for it in single_items(r, i, rng)]
    if n >= 2:
        for _ in range(pairs):
            i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
            out += pair_items(r, i, j, rng)
    return out


def balance(items: list[Item], rng: np.random.Generator, key: Callable[[Item], object]) -> list[Item]:
    """Down-sample ``items`` so that every value of ``key`` (e.g. ``(kind, open_answer)``) within a
    kind is equally frequent (answer priors then carry no information)."""
    groups: dict[object, list[Item]] = {}
    for it in items:
        groups.setdefault(key(it), []).append(it)
    by_kind: dict[str, list[list[Item]]] = {}
    for k, g in groups.items():
        by_kind.setdefault(g[0].kind + f"/{g[0].arity}", []).append(g)
    out: list[Item] = []
    for gs in by_kind.values():
        m = min(len(g) for g in gs)
        for g in gs:
            out += [g[i] for i in rng.permutation(len(g))[:m]]
    return out


__all__ = ["Item", "MIN_OFFSET", "MIN_AREA_RATIO", "SINGLE_KINDS", "PAIR_KINDS",
           "single_items", "pair_items", "count_item", "scene_items", "balance"]
