"""Scenes of the procedural world: what is where (``Scene``), how it is told (``Phrasing``), and the hard-negative edits.

A scene is a few objects (shape, colour, size, position) and the spatial relations the caption asserts between
them. Every object of a scene is mentioned in its caption, so a caption naming an absent object is false, and shapes
are distinct within a scene, so "the square" always refers to one object. The geometry of a relation is strict:
"a left of b" means a's centre lies left of b's by at least the two radii plus a margin, inside a cone of
half-angle ~24 degrees, so it is never also "above" or "below".

All functions are pure given their ``random.Random``: the same seed gives the same scene, phrasing and negative.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..synthesis.rules import NEGATIVE_KINDS
from . import vocabulary as V

MAX_OBJECTS = 4
_MARGIN = 0.04  # minimal free space between objects and to the border, as a fraction of the image side
_CONE = 0.45  # |off-axis offset| <= _CONE * on-axis distance for a relation to hold


@dataclass(frozen=True)
class WorldObject:
    """One object: a shape of a colour and size, centred at (x, y) in [0, 1] image coordinates (y downwards)."""

    shape: str
    colour: str
    size: str
    x: float = 0.5
    y: float = 0.5
    rotation: float = 0.0  # degrees, a small jitter that carries no meaning
    shade: tuple[int, int, int] = (0, 0, 0)  # a small RGB offset of the colour, no meaning

    @property
    def radius(self) -> float:
        return V.SIZES[self.size]


@dataclass(frozen=True)
class Relation:
    """The fact "objects[subject] is <relation> objects[reference]", e.g. ``Relation(0, "left", 1)``."""

    subject: int
    relation: str
    reference: int


@dataclass(frozen=True)
class Scene:
    """Objects, the relations the caption asserts, and the background (colour name and texture)."""

    objects: tuple[WorldObject, ...]
    relations: tuple[Relation, ...]
    background: str
    texture: str
    texture_seed: int = 0

    def combinations(self) -> set[tuple[str, str]]:
        """The (colour, shape) pairs visible in the scene."""
        return {(o.colour, o.shape) for o in self.objects}

    def to_json(self) -> str:
        """The scene as compact JSON (positions rounded to 1e-4 of the image side)."""
        data = {
            "objects": [
                {"shape": o.shape, "colour": o.colour, "size": o.size, "x": round(o.x, 4), "y": round(o.y, 4),
                 "rotation": round(o.rotation, 2), "shade": list(o.shade)}
                for o in self.objects
            ],
            "relations": [{"subject": r.subject, "relation": r.relation, "reference": r.reference}
                          for r in self.relations],
            "background": self.background,
            "texture": self.texture,
            "texture_seed": self.texture_seed,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Scene":
        data = json.loads(text)
        objects = tuple(WorldObject(**{**o, "shade": tuple(o["shade"])}) for o in data["objects"])
        relations = tuple(Relation(**r) for r in data["relations"])
        return cls(objects, relations, data["background"], data["texture"], data["texture_seed"])


@dataclass(frozen=True)
class Phrasing:
    """How a scene is told: template and synonym choices, and which attributes are mentioned, per object slot.

    A negative caption reuses its positive's phrasing, so the two differ only where the scene was edited.
    """

    template: int
    clauses: tuple[int, ...]  # per object slot >= 2: index into the relation or existence clauses
    shape_words: tuple[int, ...]
    size_words: tuple[int, ...]
    relation_words: tuple[int, ...]  # per object slot: phrase choice for the relation it is the subject of
    mention_colour: tuple[bool, ...]
    mention_size: tuple[bool, ...]
    background_template: int
    mention_background: bool
    period: bool


def sample_phrasing(rng: random.Random) -> Phrasing:
    """A random way of telling any scene of up to ``MAX_OBJECTS`` objects."""
    n = MAX_OBJECTS
    return Phrasing(
        template=rng.randrange(len(V.MAIN_TEMPLATES)),
        clauses=tuple(rng.randrange(3) for _ in range(n)),
        shape_words=tuple(rng.randrange(6) for _ in range(n)),
        size_words=tuple(rng.randrange(6) for _ in range(n)),
        relation_words=tuple(rng.randrange(6) for _ in range(n)),
        mention_colour=tuple(rng.random() < 0.85 for _ in range(n)),
        mention_size=tuple(rng.random() < 0.5 for _ in range(n)),
        background_template=rng.randrange(len(V.BACKGROUND_TEMPLATES)),
        mention_background=rng.random() < 0.3,
        period=rng.random() < 0.3,
    )


# ----------------------------------------------------------------------------------------------------- captions


def _article(first_word: str) -> str:
    return "an" if first_word[0] in "aeiou" else "a"


def noun_phrase(scene: Scene, phrasing: Phrasing, k: int, definite: bool = False) -> str:
    """``a small red circle`` / ``the circle`` for object k as the phrasing tells it."""
    obj = scene.objects[k]
    shape_words = V.SHAPE_WORDS[obj.shape]
    noun = shape_words[phrasing.shape_words[k] % len(shape_words)]
    if definite:
        return f"the {noun}"
    words = []
    if phrasing.mention_size[k]:
        size_words = V.SIZE_WORDS[obj.size]
        words.append(size_words[phrasing.size_words[k] % len(size_words)])
    if phrasing.mention_colour[k]:
        words.append(obj.colour)
    words.append(noun)
    return f"{_article(words[0])} {' '.join(words)}"


def _relation_phrase(relation: str, phrasing: Phrasing, slot: int) -> str:
    words = V.RELATION_WORDS[relation]
    return words[phrasing.relation_words[slot] % len(words)]


def describe(scene: Scene, phrasing: Phrasing) -> str:
    """The caption of a scene: the main relation, a clause per extra object, and maybe the background."""
    main = next(r for r in scene.relations if r.subject == 0)
    template, inverse = V.MAIN_TEMPLATES[phrasing.template]
    relation = V.INVERSE_RELATION[main.relation] if inverse else main.relation
    text = template.format(
        a=noun_phrase(scene, phrasing, 0),
        b=noun_phrase(scene, phrasing, main.reference),
        rel=_relation_phrase(relation, phrasing, 0),
    )
    by_subject = {r.subject: r for r in scene.relations}
    for k in range(2, len(scene.objects)):
        clause_choice = phrasing.clauses[k]
        if k in by_subject:
            r = by_subject[k]
            text += V.RELATION_CLAUSES[clause_choice % len(V.RELATION_CLAUSES)].format(
                c=noun_phrase(scene, phrasing, k),
                rel=_relation_phrase(r.relation, phrasing, k),
                ref=noun_phrase(scene, phrasing, r.reference, definite=True),
            )
        else:
            text += V.EXISTENCE_CLAUSES[clause_choice % len(V.EXISTENCE_CLAUSES)].format(
                c=noun_phrase(scene, phrasing, k)
            )
    if phrasing.mention_background:
        text = V.BACKGROUND_TEMPLATES[phrasing.background_template].format(s=text, bg=scene.background)
    return text + ("." if phrasing.period else "")


# ------------------------------------------------------------------------------------------------------ geometry


def relation_holds(relation: str, subject: WorldObject, reference: WorldObject) -> bool:
    """Whether "subject <relation> reference" is clearly true of the objects' positions."""
    dx, dy = V.RELATION_DIRECTION[relation]
    along = (subject.x - reference.x) * dx + (subject.y - reference.y) * dy
    across = abs((subject.x - reference.x) * dy - (subject.y - reference.y) * dx)
    return along >= subject.radius + reference.radius + _MARGIN and across <= _CONE * along


def _fits(obj: WorldObject, placed: dict[int, WorldObject]) -> bool:
    r = obj.radius
    lo, hi = r + _MARGIN / 2, 1 - r - _MARGIN / 2
    if not (lo <= obj.x <= hi and lo <= obj.y <= hi):
        return False
    return all(math.hypot(obj.x - o.x, obj.y - o.y) >= r + o.radius + _MARGIN for o in placed.values())


def _valid(k: int, obj: WorldObject, placed: dict[int, WorldObject], relations: Sequence[Relation]) -> bool:
    if not _fits(obj, placed):
        return False
    for rel in relations:
        if rel.subject == k and rel.reference in placed:
            if not relation_holds(rel.relation, obj, placed[rel.reference]):
                return False
        elif rel.reference == k and rel.subject in placed:
            if not relation_holds(rel.relation, placed[rel.subject], obj):
                return False
    return True


def _propose(k: int, obj: WorldObject, placed: dict[int, WorldObject], relations: Sequence[Relation],
             rng: random.Random) -> WorldObject | None:
    """A candidate position for object k: inside the image and the cone of a relation to a placed object.

    Returns None when that cone holds no position inside the image (the layout then starts again).
    """
    r = obj.radius
    lo, hi = r + _MARGIN / 2, 1 - r - _MARGIN / 2
    for rel in relations:
        if rel.subject == k and rel.reference in placed:
            anchor, direction = placed[rel.reference], rel.relation
            break
        if rel.reference == k and rel.subject in placed:
            anchor, direction = placed[rel.subject], V.INVERSE_RELATION[rel.relation]
            break
    else:
        return WorldObject(obj.shape, obj.colour, obj.size, rng.uniform(lo, hi), rng.uniform(lo, hi), obj.rotation,
                           obj.shade)
    dx, dy = V.RELATION_DIRECTION[direction]
    horizontal = dx != 0
    sign = dx if horizontal else dy
    start, other = (anchor.x, anchor.y) if horizontal else (anchor.y, anchor.x)
    minimum = r + anchor.radius + _MARGIN
    maximum = (hi - start) if sign > 0 else (start - lo)
    if maximum < minimum:
        return None
    along = rng.uniform(minimum, min(maximum, minimum + 0.45))
    spread = _CONE * along * 0.9
    low, high = max(lo, other - spread), min(hi, other + spread)
    if low > high:
        return None
    first, second = start + sign * along, rng.uniform(low, high)
    x, y = (first, second) if horizontal else (second, first)
    return WorldObject(obj.shape, obj.colour, obj.size, x, y, obj.rotation, obj.shade)


def layout(scene: Scene, rng: random.Random, keep: Scene | None = None, movable: Sequence[int] = (),
           relayout: bool = True, tries: int = 60, restarts: int = 20) -> Scene | None:
    """Place the scene's objects so that every relation holds and nothing overlaps or leaves the image.

    With ``keep`` (the positive scene), every object not in ``movable`` keeps its position from ``keep`` whenever
    that position is still valid, and only the others are placed anew, so a negative image differs from its
    positive only where the edit demands. Only if that fails repeatedly (and ``relayout`` allows it) is the whole
    scene laid out again.
    Returns None when no layout is found (the caller then tries another edit or scene).
    """
    objects = scene.objects
    n = len(objects)
    attempts = restarts if keep is None else (2 * restarts if relayout else restarts)
    for attempt in range(attempts):
        placed: dict[int, WorldObject] = {}
        if keep is not None and attempt < restarts:
            for k in range(min(n, len(keep.objects))):
                if k in movable:
                    continue
                kept = dataclasses.replace(objects[k], x=keep.objects[k].x, y=keep.objects[k].y)
                if _valid(k, kept, placed, scene.relations):
                    placed[k] = kept
        for k in range(n):
            if k in placed:
                continue
            for _ in range(tries):
                candidate = _propose(k, objects[k], placed, scene.relations, rng)
                if candidate is None:
                    break
                if _valid(k, candidate, placed, scene.relations):
                    placed[k] = candidate
                    break
            else:
                break
            if k not in placed:
                break
        if len(placed) == n:
            return dataclasses.replace(scene, objects=tuple(placed[k] for k in range(n)))
    return None


def caption_true_of(described: Scene, phrasing: Phrasing, world: Scene) -> bool:
    """Whether the caption ``describe(described, phrasing)`` is true of the image of ``world``.

    True when the described objects can be matched one-to-one to distinct objects of ``world`` with the same shape
    and every mentioned colour and size, such that every asserted relation holds geometrically in ``world``.
    (Objects of ``world`` the caption does not mention are allowed, as in any caption.)
    """
    n, m = len(described.objects), len(world.objects)
    if n > m:
        return False
    candidates = []
    for k, obj in enumerate(described.objects):
        candidates.append([
            j for j, other in enumerate(world.objects)
            if other.shape == obj.shape
            and (not phrasing.mention_colour[k] or other.colour == obj.colour)
            and (not phrasing.mention_size[k] or other.size == obj.size)
        ])
    if phrasing.mention_background and described.background != world.background:
        return False
    for assignment in itertools.product(*candidates):
        if len(set(assignment)) < n:
            continue
        if all(relation_holds(r.relation, world.objects[assignment[r.subject]], world.objects[assignment[r.reference]])
               for r in described.relations):
            return True
    return False


# ------------------------------------------------------------------------------------------------ sampling scenes

#: A predicate on (colour, shape): whether the combination may appear.
Allowed = Callable[[str, str], bool]


def _sample_object(rng: random.Random, shape: str, colour: str) -> WorldObject:
    return WorldObject(
        shape=shape,
        colour=colour,
        size=rng.choice(V.SIZE_NAMES),
        rotation=rng.uniform(-12, 12),
        shade=tuple(rng.randint(-14, 14) for _ in range(3)),
    )


def sample_scene(rng: random.Random, allowed: Allowed, require: Allowed | None = None,
                 num_objects: int | None = None) -> Scene:
    """A random scene of 2-4 objects whose (colour, shape) pairs are all ``allowed``.

    Args:
        rng: the source of randomness.
        allowed: which (colour, shape) combinations may appear.
        require: when given, at least one object must satisfy it (e.g. a held-out combination for test scenes).
        num_objects: fix the number of objects (default: 2, 3 or 4 with probabilities 0.45, 0.4, 0.15).
    """
    while True:
        n = num_objects or rng.choices((2, 3, 4), weights=(0.45, 0.4, 0.15))[0]
        shapes = rng.sample(V.SHAPES, n)
        objects = []
        for i, shape in enumerate(shapes):
            colours = [c for c in V.COLOUR_NAMES if allowed(c, shape)]
            if require is not None and i == 0:
                colours = [c for c in colours if require(c, shape)] or colours
            objects.append(_sample_object(rng, shape, rng.choice(colours)))
        if require is not None and not any(require(o.colour, o.shape) for o in objects):
            continue
        rng.shuffle(objects)  # the required object may be any of them
        relations = [Relation(0, rng.choice(V.RELATIONS), 1)]
        for k in range(2, n):
            if rng.random() < 0.6:
                relations.append(Relation(k, rng.choice(V.RELATIONS), rng.randrange(k)))
        scene = Scene(tuple(objects), tuple(relations), rng.choice(V.BACKGROUND_NAMES), rng.choice(V.TEXTURES),
                      rng.randrange(2**31))
        placed = layout(scene, rng)
        if placed is not None:
            return placed


# ------------------------------------------------------------------------------------------------ negative edits


def _with_object(scene: Scene, k: int, **changes) -> Scene:
    objects = list(scene.objects)
    objects[k] = dataclasses.replace(objects[k], **changes)
    return dataclasses.replace(scene, objects=tuple(objects))


def _replace(sequence: tuple, k: int, value) -> tuple:
    return sequence[:k] + (value,) + sequence[k + 1:]


def _replace_obj(scene, phrasing, rng, allowed):
    k = rng.randrange(len(scene.objects))
    obj = scene.objects[k]
    used = {o.shape for o in scene.objects}
    options = [s for s in V.SHAPES if s not in used and allowed(obj.colour, s)]
    if not options:
        return None
    return _with_object(scene, k, shape=rng.choice(options)), phrasing, ()


def _replace_att(scene, phrasing, rng, allowed):
    choices = [(k, "colour") for k in range(len(scene.objects)) if phrasing.mention_colour[k]]
    choices += [(k, "size") for k in range(len(scene.objects)) if phrasing.mention_size[k]]
    if not choices:
        return None
    k, attribute = rng.choice(choices)
    obj = scene.objects[k]
    if attribute == "size":
        return _with_object(scene, k, size="large" if obj.size == "small" else "small"), phrasing, (k,)
    options = [c for c in V.COLOUR_NAMES if c != obj.colour and allowed(c, obj.shape)]
    if not options:
        return None
    return _with_object(scene, k, colour=rng.choice(options)), phrasing, ()


def _replace_rel(scene, phrasing, rng, allowed):
    j = rng.randrange(len(scene.relations))
    rel = scene.relations[j]
    new = dataclasses.replace(rel, relation=rng.choice([r for r in V.RELATIONS if r != rel.relation]))
    return dataclasses.replace(scene, relations=_replace(scene.relations, j, new)), phrasing, (rel.subject,)


def _swap_obj(scene, phrasing, rng, allowed):
    i, j = sorted(rng.sample(range(len(scene.objects)), 2))
    a, b = scene.objects[i], scene.objects[j]
    if not (allowed(a.colour, b.shape) and allowed(b.colour, a.shape)):
        return None
    swapped = _with_object(_with_object(scene, i, shape=b.shape), j, shape=a.shape)
    # The nouns trade places; the synonym choices travel with them so only the nouns change in the caption.
    words = list(phrasing.shape_words)
    words[i], words[j] = words[j], words[i]
    return swapped, dataclasses.replace(phrasing, shape_words=tuple(words)), ()


def _swap_att(scene, phrasing, rng, allowed):
    n = len(scene.objects)
    pairs = [(i, j, "colour") for i in range(n) for j in range(i + 1, n)
             if phrasing.mention_colour[i] and phrasing.mention_colour[j]
             and scene.objects[i].colour != scene.objects[j].colour]
    pairs += [(i, j, "size") for i in range(n) for j in range(i + 1, n)
              if phrasing.mention_size[i] and phrasing.mention_size[j]
              and scene.objects[i].size != scene.objects[j].size]
    if not pairs:
        return None
    i, j, attribute = rng.choice(pairs)
    a, b = scene.objects[i], scene.objects[j]
    if attribute == "colour" and not (allowed(b.colour, a.shape) and allowed(a.colour, b.shape)):
        return None
    swapped = _with_object(_with_object(scene, i, **{attribute: getattr(b, attribute)}), j,
                           **{attribute: getattr(a, attribute)})
    return swapped, phrasing, ((i, j) if attribute == "size" else ())


def _add_obj(scene, phrasing, rng, allowed):
    n = len(scene.objects)
    if n >= MAX_OBJECTS:
        return None
    used = {o.shape for o in scene.objects}
    shape = rng.choice([s for s in V.SHAPES if s not in used])
    colours = [c for c in V.COLOUR_NAMES if allowed(c, shape)]
    new = _sample_object(rng, shape, rng.choice(colours))
    relations = scene.relations
    if rng.random() < 0.5:
        relations = relations + (Relation(n, rng.choice(V.RELATIONS), rng.randrange(n)),)
    added = dataclasses.replace(scene, objects=scene.objects + (new,), relations=relations)
    return added, dataclasses.replace(phrasing, mention_colour=_replace(phrasing.mention_colour, n, True)), (n,)


def _add_att(scene, phrasing, rng, allowed):
    choices = [(k, "colour") for k in range(len(scene.objects)) if not phrasing.mention_colour[k]]
    choices += [(k, "size") for k in range(len(scene.objects)) if not phrasing.mention_size[k]]
    if not choices:
        return None
    k, attribute = rng.choice(choices)
    obj = scene.objects[k]
    if attribute == "size":
        edited = _with_object(scene, k, size="large" if obj.size == "small" else "small")
        return edited, dataclasses.replace(phrasing, mention_size=_replace(phrasing.mention_size, k, True)), (k,)
    options = [c for c in V.COLOUR_NAMES if c != obj.colour and allowed(c, obj.shape)]
    if not options:
        return None
    edited = _with_object(scene, k, colour=rng.choice(options))
    return edited, dataclasses.replace(phrasing, mention_colour=_replace(phrasing.mention_colour, k, True)), ()


# One scene edit per kind, in the order of NEGATIVE_KINDS.
_EDITS = dict(zip(NEGATIVE_KINDS, (_replace_obj, _replace_att, _replace_rel, _swap_obj, _swap_att, _add_obj, _add_att)))
assert all(f.__name__ == f"_{kind}" for kind, f in _EDITS.items())


def make_negative(scene: Scene, phrasing: Phrasing, kind: str, rng: random.Random, allowed: Allowed,
                  attempts: int = 4) -> tuple[Scene, Phrasing] | None:
    """The negative scene and phrasing for one SugarCrepe kind, laid out near the positive; None if impossible.

    The negative caption ``describe(*result)`` differs from the positive caption, is false of the positive scene,
    and true of the negative scene, whose objects keep their positions wherever the edit allows.
    """
    if kind not in _EDITS:
        raise ValueError(f"Unknown negative kind {kind!r}; choose one of {', '.join(NEGATIVE_KINDS)}.")
    positive_caption = describe(scene, phrasing)
    for attempt in range(attempts):
        edited = _EDITS[kind](scene, phrasing, rng, allowed)
        if edited is None:
            continue
        negative, negative_phrasing, movable = edited
        # Other choices of the edit get a chance to keep the untouched objects in place before a full re-layout.
        negative = layout(negative, rng, keep=scene, movable=movable, relayout=attempt == attempts - 1)
        if negative is None or not all(allowed(c, s) for c, s in negative.combinations()):
            continue
        if describe(negative, negative_phrasing) == positive_caption:
            continue
        if caption_true_of(negative, negative_phrasing, scene):  # e.g. two unrelated objects traded places
            continue
        return negative, negative_phrasing
    return None
