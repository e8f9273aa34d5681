"""Rule-based negative captions of SugarCrepe's seven kinds, from word lists and a light parser.

For runs without an LLM (``tripletclip synthesize --rules``) and for the Space, which proposes hard negatives for a
user's caption. Each negative caption is labelled with its kind (one of `NEGATIVE_KINDS`):

* ``replace_obj``: one object noun becomes another of its category ("A man riding a horse" -> "A woman riding
  a horse");
* ``replace_att``: one colour, size, age, state, material or pattern word changes ("A tan toilet" -> "A white
  toilet");
* ``replace_rel``: one spatial relation or action verb becomes a contrasting one ("A cat on a couch" -> "A cat
  under a couch", "sitting" -> "standing");
* ``swap_obj``: two objects of one group (two agents, or two things) trade places with their attributes across a
  directed relation or an action ("A dog chasing a cat" -> "A cat chasing a dog");
* ``swap_att``: two attributes of one type on different objects trade places ("Blue bathroom with white towels" ->
  "White bathroom with blue towels");
* ``add_obj``: "and a <object>" joins an object noun ("A cat sitting on a couch" -> "A cat and a dog sitting on a
  couch");
* ``add_att``: an attribute is inserted before an object noun ("A cat on a couch" -> "A cat on a red couch").

How it works: the caption is split into words (punctuation and spacing are kept, so the untouched parts come back
byte for byte). Words are tagged from small hand-written lists: object nouns grouped in categories (people, animals,
vehicles, furniture, food, ...) with their plurals; attributes by type (colour, size, age, state, material, pattern);
spatial relations (``on``, ``next to``, ``in front of``, ...); action verbs in their base, ``-s`` and ``-ing``
forms; determiners and numbers. A noun is only edited when it is the head of a simple noun phrase: a determiner or a
number, then only known attributes, then the noun, then a word that cannot continue a compound (a preposition, a
verb, punctuation). That rule keeps "hot dog", "teddy bear" or "living room" from being broken apart, at the price
of skipping many editable nouns. Replacements keep grammatical number and case, and ``a``/``an`` is fixed after
every edit. A replacement never uses a synonym or a more general word (``man`` never becomes ``guy`` or
``person``), so the negative caption contradicts the caption instead of restating it.

Choice and determinism: with ``kind=None``, :func:`generate_negative` picks uniformly among the kinds that apply to
the caption, then one edit of that kind, both from ``random.Random(seed)``; ``seed=None`` means a seed derived from
the caption text, so the same caption always gives the same negative. When no edit applies (or the requested kind
does not apply), it returns ``None``: callers record such captions as rejected rather than keep the caption itself.

Limits, honestly:

* English only, and only the words in the lists below (a few hundred). Captions about anything else (a "giraffe
  eating leaves" is covered, a "tuba player" is not) often get no edit of a given kind, or none at all; on the real
  SugarCrepe positive captions about nine in ten get at least one kind.
* The parser is a handful of patterns, not a grammar: it does not see clause structure, coreference or idioms
  ("on display" may become "under display"). Edits are grammatical in the patterns it checks (number agreement,
  articles), not always plausible: a swap can make a "laptop sitting on a cat".
* ``add_obj`` coordinates with the noun ("a cat and a dog"); it avoids singular subjects of a later singular verb
  ("A cat on a couch is ..."), but the result can still read as a list ("riding a horse and a cow").
* The changes are the easy, lexical kind that text-only models can spot (SugarCrepe was built to remove such
  artefacts); an LLM (:mod:`.llm`) gives more varied and more natural negative captions.

This module is self-contained (standard library only, no import of the package): it defines SugarCrepe's seven kinds
(:data:`NEGATIVE_KINDS`, the one definition every part of the package uses) and travels alone with the Space, as the
model files travel with a checkpoint.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass

__all__ = ["NEGATIVE_KINDS", "SUGARCREPE_GROUPS", "NegativeCaption", "applicable_kinds", "generate_negative",
           "propose_negatives"]

#: SugarCrepe's seven kinds of hard negative: the values of TripletData's ``negative_kind`` for rule-based and world
#: negatives, and the names of SugarCrepe's subsets (``<kind>.json``), in the SugarCrepe paper's order.
NEGATIVE_KINDS: tuple[str, ...] = (
    "replace_obj",
    "replace_att",
    "replace_rel",
    "swap_obj",
    "swap_att",
    "add_obj",
    "add_att",
)

#: SugarCrepe's three groups of kinds, each reported as the mean of its subsets.
SUGARCREPE_GROUPS: dict[str, tuple[str, ...]] = {
    "replace": ("replace_obj", "replace_att", "replace_rel"),
    "swap": ("swap_obj", "swap_att"),
    "add": ("add_obj", "add_att"),
}


@dataclass(frozen=True)
class NegativeCaption:
    """A negative caption and the kind of change that made it (one of `NEGATIVE_KINDS`)."""

    text: str
    kind: str


# --------------------------------------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------------------------------------

# Object nouns by category. Each entry is one concept: a tuple of singular forms that mean (nearly) the same thing,
# the first being the one used when the concept is inserted or substituted. Concepts of one category replace each
# other; synonyms never replace each other.
_OBJECTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "person": (("man", "guy"), ("woman", "lady"), ("boy",), ("girl",), ("baby", "toddler")),
    "role": (("skier",), ("surfer",), ("skateboarder",), ("snowboarder",), ("chef",), ("soldier",),
             ("police officer",)),
    "animal": (
        ("dog", "puppy"), ("cat", "kitten"), ("horse",), ("cow",), ("elephant",), ("bear",), ("zebra",),
        ("giraffe",), ("pig",), ("goat",), ("lion",), ("tiger",), ("monkey",), ("rabbit",), ("squirrel",), ("bird",),
    ),
    "vehicle": (
        ("car",), ("truck",), ("bus",), ("train",), ("motorcycle",), ("bicycle", "bike"), ("boat",),
        ("airplane", "plane", "jet"), ("van",), ("scooter",), ("tractor",), ("helicopter",),
    ),
    "furniture": (("table",), ("chair",), ("couch", "sofa"), ("bed",), ("bench",), ("desk",), ("shelf",), ("cabinet",)),
    "appliance": (("sink",), ("toilet",), ("bathtub", "tub"), ("oven",), ("refrigerator", "fridge"), ("microwave",),
                  ("stove",)),
    "household": (("clock",), ("lamp",), ("mirror",), ("vase",), ("television", "tv"), ("laptop",), ("keyboard",),
                  ("phone",), ("book",), ("pillow",), ("candle",), ("teddy bear",)),
    "food": (("pizza",), ("sandwich",), ("cake",), ("donut", "doughnut"), ("banana",), ("apple",), ("carrot",),
             ("bagel",), ("cookie",), ("muffin",), ("pie",), ("egg",), ("tomato",), ("burger", "hamburger"),
             ("potato",), ("hot dog",)),
    "container": (("plate",), ("bowl",), ("cup", "mug"), ("bottle",), ("basket",), ("box",), ("bag",), ("pot",),
                  ("pan",), ("tray",), ("jar",)),
    "utensil": (("fork",), ("knife",), ("spoon",), ("toothbrush",)),
    "gear": (("ball",), ("frisbee",), ("kite",), ("umbrella",), ("surfboard",), ("skateboard",), ("snowboard",),
             ("racket", "racquet"), ("backpack",), ("suitcase",), ("camera",)),
    "clothing": (("shirt",), ("jacket", "coat"), ("hat", "cap"), ("helmet",), ("dress",), ("tie",), ("scarf",)),
    "scene": (("street", "road"), ("field",), ("beach",), ("park",), ("kitchen",), ("bathroom",), ("bedroom",),
              ("sidewalk",), ("hill",), ("mountain",), ("river",), ("lake",), ("ocean",), ("yard",), ("forest",),
              ("restaurant",), ("airport",)),
    "plant": (("tree",), ("flower",), ("bush",)),
    "structure": (("sign",), ("fence",), ("pole",), ("wall",), ("bridge",), ("tower",), ("statue",), ("fountain",),
                  ("door",), ("window",)),
}
# Nouns that are recognised (they head noun phrases) but never substituted nor inserted: each is more general than
# other entries, so replacing it or by it would not contradict the caption.
_GENERIC_NOUNS: dict[str, str] = {
    "person": "person", "people": "person", "child": "person", "kid": "person", "player": "role",
    "animal": "animal", "vehicle": "vehicle",
    "room": "scene", "building": "structure", "house": "structure", "area": "scene", "computer": "household",
    "plant": "plant", "food": "food", "dish": "container", "glass": "container", "sheep": "animal", "deer": "animal",
    "fish": "animal", "duck": "animal", "pigeon": "animal", "seagull": "animal", "city": "scene",
}
_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "knife": "knives", "shelf": "shelves",
    "tomato": "tomatoes", "potato": "potatoes", "sheep": "sheep", "deer": "deer", "fish": "fish",
    "police officer": "police officers", "people": "people",
}
# Categories whose members act and can trade places with each other in a swap.
_ANIMATE = ("person", "role", "animal")
# Categories never swapped nor used as anchors for an added object (where, what one wears).
_BACKGROUND = ("scene", "clothing")

_COLOURS = ("red", "blue", "green", "yellow", "white", "black", "brown", "orange", "pink", "purple", "gray", "grey",
            "silver", "tan", "beige", "golden")
_COLOUR_POOL = ("red", "blue", "green", "yellow", "white", "black", "brown", "orange", "pink", "purple", "gray")
_MATERIALS = ("wooden", "wood", "metal", "steel", "plastic", "glass", "stone", "brick", "leather", "ceramic",
              "concrete")
_MATERIAL_POOL = ("wooden", "metal", "plastic", "glass", "stone")
_MATERIAL_FAMILY = {"wood": "wooden", "steel": "metal", "concrete": "stone", "brick": "stone"}
_PATTERNS = ("striped", "spotted", "checkered", "plaid", "plain")
_PATTERN_POOL = ("striped", "spotted", "checkered", "plain")
# Antonyms for the graded types (several choices where one antonym is not enough).
_ANTONYMS = {
    # size
    "small": ("large", "huge"), "large": ("small", "tiny"), "big": ("small", "tiny"), "little": ("big", "large"),
    "tiny": ("huge", "large"), "huge": ("tiny", "small"), "giant": ("tiny",), "tall": ("short",),
    "short": ("tall", "long"), "long": ("short",),
    # age
    "young": ("old",), "old": ("young", "new"), "new": ("old",),
    # state
    "empty": ("full", "crowded"), "full": ("empty",), "open": ("closed",), "closed": ("open",), "wet": ("dry",),
    "dry": ("wet",), "clean": ("dirty",), "dirty": ("clean",), "busy": ("empty",), "crowded": ("empty",),
    "messy": ("clean", "tidy"), "tidy": ("messy",), "sunny": ("cloudy", "snowy"), "cloudy": ("sunny",),
    "snowy": ("sunny", "grassy"), "grassy": ("snowy", "sandy"), "sandy": ("grassy",), "lit": ("dark",),
}
_SIZES = ("small", "large", "big", "little", "tiny", "huge", "giant", "tall", "short", "long")
_AGES = ("young", "old", "new")
_STATES = ("empty", "full", "open", "closed", "wet", "dry", "clean", "dirty", "busy", "crowded", "messy", "tidy",
           "sunny", "cloudy", "snowy", "grassy", "sandy")

_ATTRIBUTE_TYPES: dict[str, str] = {}
for _type, _words in (("state", _STATES), ("size", _SIZES), ("age", _AGES), ("colour", _COLOURS),
                      ("pattern", _PATTERNS), ("material", _MATERIALS)):
    for _word in _words:
        _ATTRIBUTE_TYPES[_word] = _type
# English adjective order: state/opinion, size, age, colour, pattern, material ("a large old red striped wooden box").
_ATTRIBUTE_ORDER = {"state": 0, "size": 1, "age": 2, "colour": 3, "pattern": 4, "material": 5}
# Attributes that read naturally when inserted before a noun of a category (add_att).
_ADD_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "person": ("young", "old", "tall"),
    "role": ("young", "old", "tall"),
    "animal": ("small", "large", "brown", "black", "white", "gray"),
    "vehicle": ("red", "blue", "white", "black", "yellow", "green", "small", "large", "old"),
    "furniture": ("wooden", "metal", "white", "black", "red", "small", "large", "old"),
    "appliance": ("white", "black", "small", "large", "old", "dirty", "clean"),
    "household": ("small", "large", "old", "black", "white", "red"),
    "food": ("small", "large"),
    "container": ("empty", "white", "blue", "red", "small", "large", "plastic"),
    "utensil": ("metal", "plastic", "small", "large"),
    "gear": ("red", "blue", "yellow", "green", "white", "black", "small", "large"),
    "clothing": ("red", "blue", "green", "yellow", "white", "black", "striped"),
    "scene": ("small", "large", "empty"),
    "plant": ("small", "large", "tall"),
    "structure": ("red", "white", "tall", "small", "large", "wooden", "metal", "stone"),
}

# Spatial relations and their contrasting replacements. Multi-word relations are matched before single words.
_RELATIONS: dict[str, tuple[str, ...]] = {
    "to the left of": ("to the right of",), "to the right of": ("to the left of",),
    "on the left of": ("on the right of",), "on the right of": ("on the left of",),
    "in front of": ("behind",), "on top of": ("under", "next to"), "inside of": ("outside of",),
    "outside of": ("inside of",), "next to": ("behind", "far from", "on top of"), "close to": ("far from",),
    "far from": ("next to",), "away from": ("toward",), "out of": ("into",), "left of": ("right of",),
    "right of": ("left of",), "looking at": ("looking away from",), "looks at": ("looks away from",),
    "look at": ("look away from",), "on": ("under", "next to"), "under": ("on top of", "above"),
    "underneath": ("on top of",), "beneath": ("above",), "above": ("below", "under"), "below": ("above",),
    "over": ("under",), "atop": ("under",), "behind": ("in front of",), "beside": ("behind", "in front of"),
    "near": ("far from",), "inside": ("outside",), "outside": ("inside",), "into": ("out of",),
    "toward": ("away from",), "towards": ("away from",), "across": ("along",), "along": ("across",),
    "with": ("without",), "without": ("with",), "in": ("next to", "under"),
}
_SYMMETRIC_RELATIONS = ("next to", "near", "beside", "close to", "far from", "with", "without")
_RELATION_PHRASES = sorted((tuple(p.split()) for p in _RELATIONS), key=len, reverse=True)
# "in" is only contrasted before these (inside a room or building is the clear case) and before plain objects.
_IN_OUTSIDE = ("kitchen", "bathroom", "bedroom", "restaurant", "room", "building", "house")
# Words after which "on" is part of a fixed expression ("talking on the phone").
_ON_IDIOMS = ("talk", "talks", "talking", "chatting", "turned", "based", "focused", "working", "all")

# Action verbs: (base, -s, -ing) -> contrasting (base, -s, -ing), and whether an object must follow.
_VERBS: tuple[tuple[tuple[str, str, str], tuple[str, str, str], bool], ...] = (
    (("sit", "sits", "sitting"), ("stand", "stands", "standing"), False),
    (("stand", "stands", "standing"), ("sit", "sits", "sitting"), False),
    (("lie", "lies", "lying"), ("stand", "stands", "standing"), False),
    (("lay", "lays", "laying"), ("stand", "stands", "standing"), False),
    (("walk", "walks", "walking"), ("run", "runs", "running"), False),
    (("run", "runs", "running"), ("walk", "walks", "walking"), False),
    (("ride", "rides", "riding"), ("push", "pushes", "pushing"), True),
    (("hold", "holds", "holding"), ("drop", "drops", "dropping"), True),
    (("carry", "carries", "carrying"), ("drop", "drops", "dropping"), True),
    (("eat", "eats", "eating"), ("hold", "holds", "holding"), True),
    (("throw", "throws", "throwing"), ("catch", "catches", "catching"), True),
    (("catch", "catches", "catching"), ("throw", "throws", "throwing"), True),
    (("push", "pushes", "pushing"), ("pull", "pulls", "pulling"), True),
    (("pull", "pulls", "pulling"), ("push", "pushes", "pushing"), True),
    (("chase", "chases", "chasing"), ("ignore", "ignores", "ignoring"), True),
    (("watch", "watches", "watching"), ("ignore", "ignores", "ignoring"), True),
    (("wear", "wears", "wearing"), ("hold", "holds", "holding"), True),
    (("hug", "hugs", "hugging"), ("push", "pushes", "pushing"), True),
    (("climb", "climbs", "climbing"), ("descend", "descends", "descending"), True),
    (("enter", "enters", "entering"), ("leave", "leaves", "leaving"), True),
    (("leave", "leaves", "leaving"), ("enter", "enters", "entering"), True),
    (("drive", "drives", "driving"), ("push", "pushes", "pushing"), True),
    (("play", "plays", "playing"), ("watch", "watches", "watching"), True),
    (("kick", "kicks", "kicking"), ("catch", "catches", "catching"), True),
    (("cut", "cuts", "cutting"), ("serve", "serves", "serving"), True),
    (("fly", "flies", "flying"), ("hold", "holds", "holding"), True),
    (("drink", "drinks", "drinking"), ("spill", "spills", "spilling"), True),
    (("pet", "pets", "petting"), ("feed", "feeds", "feeding"), True),
    (("feed", "feeds", "feeding"), ("pet", "pets", "petting"), True),
    (("hit", "hits", "hitting"), ("miss", "misses", "missing"), True),
    (("swing", "swings", "swinging"), ("hold", "holds", "holding"), True),
)
_VERB_FORMS: dict[str, tuple[int, int]] = {}  # word -> (verb index, form index 0/1/2)
for _index, (_forms, _, _) in enumerate(_VERBS):
    for _form_index, _form in enumerate(_forms):
        _VERB_FORMS.setdefault(_form, (_index, _form_index))
_PARTICLES = ("up", "down", "out", "off", "away", "over", "around", "back")

_DETERMINERS = ("a", "an", "the", "this", "these", "those", "his", "her", "its", "their", "my", "our", "your",
                "some", "several", "many", "few", "another", "each", "every", "multiple", "various", "both", "other",
                "no", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                "one", "lots", "couple", "pair")
_PLURAL_DETERMINERS = ("these", "those", "some", "several", "many", "few", "multiple", "various", "both", "two",
                       "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_COPULAS = ("is", "are", "was", "were", "be", "been", "being", "looks", "look", "appears", "seems")
_FINITE_SINGULAR = ("is", "was", "has", "does")
_AUXILIARIES = ("is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "does", "do", "did",
                "can", "will", "would", "could", "should", "may", "might", "must")
_FUNCTION_WORDS = ("and", "or", "but", "while", "as", "that", "who", "which", "where", "when", "with", "of", "to",
                   "for", "from", "at", "by", "in", "on", "near", "next", "under", "behind", "beside", "above",
                   "below", "over", "into", "onto", "inside", "outside", "through", "across", "along", "around",
                   "against", "between", "among", "toward", "towards", "during", "after", "before", "without",
                   "together", "alone", "there", "here", "then", "so", "if", "than", "underneath", "beneath", "atop",
                   "up", "down", "out", "off", "away", "very", "also", "just", "close", "far")
# Nouns ending in -ing (not verbs).
_ING_NOUNS = ("building", "ceiling", "railing", "clothing", "painting", "ring", "king", "thing", "something",
              "nothing", "anything", "everything", "evening", "morning", "wedding", "icing", "frosting", "topping",
              "lighting", "dining", "living", "string", "swing", "wing", "spring", "sibling", "parking", "ping",
              "pudding", "stuffing", "filling", "darling", "bing", "duckling", "sling", "awning", "landing")
_VOWEL_EXCEPTIONS_CONSONANT = ("uni", "use", "usu", "uti", "eu", "one", "once")
_VOWEL_EXCEPTIONS_VOWEL = ("hour", "honest", "honor", "honour", "heir")


def _plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    *head, last = noun.split(" ")
    if head:
        return " ".join(head + [_plural(last)])
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    return noun + "s"


@dataclass(frozen=True)
class _Noun:
    lemma: str          # the concept's first singular form
    category: str
    plural: bool | None  # None: same form for both numbers
    concept: str        # identifies synonyms
    generic: bool
    words: int          # number of words of the form


def _build_nouns() -> dict[str, _Noun]:
    nouns: dict[str, _Noun] = {}
    for category, concepts in _OBJECTS.items():
        for concept in concepts:
            for form in concept:
                for number, text in ((False, form), (True, _plural(form))):
                    nouns[text] = _Noun(concept[0], category, number, concept[0], False, len(text.split()))
    for form, category in _GENERIC_NOUNS.items():
        plural = _plural(form)
        ambiguous = plural == form
        if form == "people":
            nouns[form] = _Noun("person", category, True, "person", True, 1)
            continue
        nouns[form] = _Noun(form, category, None if ambiguous else False, form, True, 1)
        if not ambiguous:
            nouns.setdefault(plural, _Noun(form, category, True, form, True, 1))
    return nouns


_NOUNS = _build_nouns()
_MULTIWORD_NOUNS = sorted((tuple(k.split()) for k in _NOUNS if " " in k), key=len, reverse=True)


# --------------------------------------------------------------------------------------------------------------------
# Tokens and edits
# --------------------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"(\w+(?:[-']\w+)*|[^\w\s])(\s*)")


@dataclass
class _Token:
    text: str
    ws: str  # whitespace after the token

    @property
    def low(self) -> str:
        return self.text.lower()

    @property
    def is_word(self) -> bool:
        return self.text[:1].isalnum()


def _tokenize(caption: str) -> tuple[str, list[_Token]]:
    prefix = caption[: len(caption) - len(caption.lstrip())]
    return prefix, [_Token(m.group(1), m.group(2)) for m in _TOKEN.finditer(caption)]


def _detokenize(prefix: str, tokens: list[_Token]) -> str:
    return prefix + "".join(t.text + t.ws for t in tokens)


def _match_case(new: str, old: str, all_caps: bool) -> str:
    if all_caps:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _article_for(word: str) -> str:
    low = word.lower()
    if low.startswith(_VOWEL_EXCEPTIONS_VOWEL):
        return "an"
    if low.startswith(_VOWEL_EXCEPTIONS_CONSONANT):
        return "a"
    return "an" if low[:1] in "aeiou" else "a"


class _Parse:
    """A tokenised caption with the lookups the edits need."""

    def __init__(self, caption: str):
        self.caption = caption
        self.prefix, self.tokens = _tokenize(caption)
        letters = [c for c in caption if c.isalpha()]
        self.all_caps = len(letters) > 3 and all(c.isupper() for c in letters)
        self.low = [t.low for t in self.tokens]
        self.nouns = self._find_nouns()  # start index -> (end index, _Noun)
        self.noun_ends = {end: noun for end, noun in self.nouns.values()}  # end index -> _Noun
        self.concepts = [noun.concept for _, noun in self.nouns.values()]
        self.colours = [w for w in self.low if _ATTRIBUTE_TYPES.get(w) == "colour"]

    # ---- lookups ----
    def word(self, i: int) -> str | None:
        return self.low[i] if 0 <= i < len(self.low) else None

    def _find_nouns(self) -> dict[int, tuple[int, _Noun]]:
        found: dict[int, tuple[int, _Noun]] = {}
        i = 0
        while i < len(self.low):
            for phrase in _MULTIWORD_NOUNS:
                if tuple(self.low[i : i + len(phrase)]) == phrase:
                    found[i] = (i + len(phrase), _NOUNS[" ".join(phrase)])
                    i += len(phrase)
                    break
            else:
                if self.low[i] in _NOUNS:
                    found[i] = (i + 1, _NOUNS[self.low[i]])
                i += 1
        return found

    def is_attribute(self, i: int) -> bool:
        return self.word(i) in _ATTRIBUTE_TYPES

    def is_punct(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and not self.tokens[i].is_word

    def is_ing_verb(self, i: int) -> bool:
        w = self.word(i)
        return w is not None and w.endswith("ing") and len(w) > 4 and w not in _ING_NOUNS and w not in _NOUNS

    def is_noun_like(self, i: int) -> bool:
        """A known noun, or an unknown word that may be one (not a function word, verb, attribute, ...)."""
        w = self.word(i)
        if w is None or not self.tokens[i].is_word:
            return False
        if i in self.nouns:
            return True
        return not (w in _FUNCTION_WORDS or w in _DETERMINERS or w in _AUXILIARIES or w in _VERB_FORMS
                    or w in _ATTRIBUTE_TYPES or w in _COPULAS or self.is_ing_verb(i) or w.endswith("ly")
                    or w.isdigit())

    def ends_phrase(self, i: int) -> bool:
        """Whether the word at ``i`` (after a noun) cannot continue a compound noun."""
        w = self.word(i)
        if w is None or self.is_punct(i):
            return self.word(i) not in ("-", "'")
        return (w in _FUNCTION_WORDS or w in _AUXILIARIES or w in _COPULAS or w in _VERB_FORMS
                or self.is_ing_verb(i))

    def noun_phrase(self, start: int) -> tuple[int, list[int]] | None:
        """For the noun starting at ``start``: (index of the phrase's first word, attribute indices) when it heads a
        simple noun phrase (determiner or number, known attributes, the noun, a phrase boundary), else None."""
        end, noun = self.nouns[start]
        if not self.ends_phrase(end):
            return None
        attributes = []
        k = start - 1
        while k >= 0:
            if self.is_attribute(k):
                attributes.append(k)
                k -= 1
            elif self.word(k) in ("and", ",") and self.is_attribute(k - 1) and attributes:
                k -= 1
            else:
                break
        boundary = self.word(k)
        if boundary in _DETERMINERS or (boundary is not None and boundary.isdigit()):
            return k, sorted(attributes)
        plural_ok = noun.plural is True and (
            boundary is None or boundary in (".", ";", "of", "with", "and", ",") or boundary in _RELATIONS
        )
        if plural_ok:
            return k + 1, sorted(attributes)
        return None

    def attribute_head(self, i: int) -> int | None:
        """For an attribute at ``i`` used before a noun ("a red [striped] bus"): the index of that noun-like word."""
        k = i + 1
        while k < len(self.low):
            if self.is_attribute(k):
                k += 1
            elif self.word(k) in ("and", ",") and self.is_attribute(k + 1):
                k += 1
            else:
                break
        return k if self.is_noun_like(k) else None

    def sentence_of(self, i: int) -> tuple[int, int]:
        start = i
        while start > 0 and self.word(start - 1) not in (".", ";", "!", "?"):
            start -= 1
        end = i
        while end < len(self.low) and self.word(end) not in (".", ";", "!", "?"):
            end += 1
        return start, end


class _Editor:
    """Applies one edit to a copy of the tokens, then fixes articles and case."""

    def __init__(self, parse: _Parse):
        self.parse = parse
        self.tokens = [_Token(t.text, t.ws) for t in parse.tokens]
        self.touched: set[int] = set()

    def replace(self, start: int, end: int, words: str) -> "_Editor":
        parts = words.split()
        first = self.tokens[start].text
        tail_ws = self.tokens[end - 1].ws
        new = []
        for n, part in enumerate(parts):
            text = _match_case(part, first, self.parse.all_caps) if n == 0 else (
                part.upper() if self.parse.all_caps else part)
            new.append(_Token(text, " " if n < len(parts) - 1 else tail_ws))
        self.tokens[start:end] = new
        self.touched.update(range(start, start + len(new)))
        return self

    def insert_after(self, index: int, words: str) -> "_Editor":
        parts = [p.upper() if self.parse.all_caps else p for p in words.split()]
        original_ws = self.tokens[index].ws
        self.tokens[index].ws = " "
        new = [_Token(p, " ") for p in parts]
        new[-1].ws = original_ws
        self.tokens[index + 1 : index + 1] = new
        self.touched.update(range(index + 1, index + 1 + len(new)))
        return self

    def swap(self, a: tuple[int, int], b: tuple[int, int]) -> "_Editor":
        """Swap two word spans (``a`` before ``b``, not overlapping); case follows the position."""
        (a0, a1), (b0, b1) = a, b
        a_words = " ".join(t.low for t in self.tokens[a0:a1])
        b_words = " ".join(t.low for t in self.tokens[b0:b1])
        self.replace(b0, b1, a_words)  # the later span first, so the earlier indices stay valid
        self.replace(a0, a1, b_words)
        n_a, n_b = len(a_words.split()), len(b_words.split())
        shift = n_b - (a1 - a0)
        self.touched = set(range(a0, a0 + n_b)) | set(range(b0 + shift, b0 + shift + n_a))
        return self

    def text(self) -> str:
        for i, token in enumerate(self.tokens[:-1]):
            if token.low in ("a", "an") and (i + 1) in self.touched and self.tokens[i + 1].is_word:
                article = _article_for(self.tokens[i + 1].text)
                token.text = _match_case(article, token.text, self.parse.all_caps)
        return _detokenize(self.parse.prefix, self.tokens)


# --------------------------------------------------------------------------------------------------------------------
# Candidates of each kind
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    text: str
    tier: int = 0  # lower is preferred


def _noun_form(lemma: str, plural: bool) -> str:
    return _plural(lemma) if plural else lemma


def _replacement_nouns(parse: _Parse, noun: _Noun) -> list[str]:
    return [concept[0] for concept in _OBJECTS[noun.category]
            if concept[0] != noun.concept and concept[0] not in parse.concepts]


def _editable_nouns(parse: _Parse) -> list[tuple[int, int, _Noun, int, list[int]]]:
    """(start, end, noun, phrase start, attribute indices) of nouns heading simple noun phrases."""
    out = []
    for start, (end, noun) in parse.nouns.items():
        phrase = parse.noun_phrase(start)
        if phrase is not None:
            out.append((start, end, noun, phrase[0], phrase[1]))
    return out


def _replace_obj(parse: _Parse) -> list[_Candidate]:
    out = []
    for start, end, noun, _, _ in _editable_nouns(parse):
        if noun.generic or noun.plural is None:
            continue
        for lemma in _replacement_nouns(parse, noun):
            out.append(_Candidate(_Editor(parse).replace(start, end, _noun_form(lemma, noun.plural)).text()))
    return out


def _attribute_uses(parse: _Parse) -> list[tuple[int, int | None]]:
    """(attribute index, head noun index or None for a predicate) for attributes the edits may touch."""
    uses = []
    for i, word in enumerate(parse.low):
        if word not in _ATTRIBUTE_TYPES:
            continue
        head = parse.attribute_head(i)
        if head is not None:
            uses.append((i, head))
            continue
        before = parse.word(i - 1)
        if before in ("very", "mostly", "all"):
            before = parse.word(i - 2)
        after_ok = parse.is_punct(i + 1) or parse.word(i + 1) in (None, "and", "with", "in", "on", "at", "while")
        if before in _COPULAS and after_ok and _ATTRIBUTE_TYPES[word] != "age":
            uses.append((i, None))
    return uses


def _attribute_replacements(parse: _Parse, word: str, head: int | None) -> tuple[str, ...]:
    kind = _ATTRIBUTE_TYPES[word]
    if kind == "colour":
        return tuple(c for c in _COLOUR_POOL if c not in parse.colours and not (word == "grey" and c == "gray"))
    if kind == "material":
        family = _MATERIAL_FAMILY.get(word, word)
        return tuple(m for m in _MATERIAL_POOL if m != family and m not in parse.low)
    if kind == "pattern":
        return tuple(p for p in _PATTERN_POOL if p != word)
    options = _ANTONYMS.get(word, ())
    if kind in ("state", "age") and head not in parse.nouns:  # "open field", "old fashioned": known nouns only
        return ()
    if word == "old":  # old man -> young man; old car -> new car
        animate = head is not None and head in parse.nouns and parse.nouns[head][1].category in _ANIMATE
        options = ("young",) if animate else ("new",)
    return tuple(o for o in options if o not in parse.low)


def _replace_att(parse: _Parse) -> list[_Candidate]:
    out = []
    for i, head in _attribute_uses(parse):
        for option in _attribute_replacements(parse, parse.low[i], head):
            out.append(_Candidate(_Editor(parse).replace(i, i + 1, option).text()))
    return out


def _relation_at(parse: _Parse, i: int) -> tuple[int, str] | None:
    for phrase in _RELATION_PHRASES:
        if tuple(parse.low[i : i + len(phrase)]) == phrase:
            return i + len(phrase), " ".join(phrase)
    return None


def _starts_noun_phrase(parse: _Parse, i: int) -> bool:
    w = parse.word(i)
    return w is not None and (w in _DETERMINERS or w.isdigit())


def _head_after(parse: _Parse, i: int) -> _Noun | None:
    """The known noun heading the noun phrase that starts at ``i`` (determiner, attributes, noun)."""
    k = i + 1
    while parse.is_attribute(k):
        k += 1
    if k not in parse.nouns or not parse.ends_phrase(parse.nouns[k][0]):  # unknown, or part of a compound
        return None
    return parse.nouns[k][1]


def _replace_rel(parse: _Parse) -> list[_Candidate]:
    out = []
    i = 0
    while i < len(parse.low):
        match = _relation_at(parse, i)
        if match is not None:
            end, phrase = match
            options = _RELATIONS[phrase]
            ok = _starts_noun_phrase(parse, end)
            before = parse.word(i - 1)
            if phrase == "on" and before in _ON_IDIOMS:
                ok = False
            if phrase == "over" and before == "all":
                ok = False
            if phrase in ("with", "without") and (i not in parse.noun_ends or not (
                    parse.word(end) in ("a", "an") or (parse.word(end) or "").isdigit()
                    or parse.word(end) in _PLURAL_DETERMINERS)):  # "a man with a hat", not "filled with", "with his"
                ok = False
            if phrase == "on":  # a cat under a couch, but a plane next to (not under) a runway
                head = _head_after(parse, end) if ok else None
                if head is None or head.category in _BACKGROUND:
                    options = ("next to",)
            if phrase == "in":
                head = _head_after(parse, end) if ok else None
                if head is None or head.category in ("clothing", "scene") and head.concept not in _IN_OUTSIDE:
                    ok = False
                elif head.concept in _IN_OUTSIDE or head.category == "scene":
                    options = ("outside",)
            if ok:
                for option in options:
                    out.append(_Candidate(_Editor(parse).replace(i, end, option).text()))
            i = end
            continue
        word = parse.low[i]
        if word in _VERB_FORMS:
            verb, form = _VERB_FORMS[word]
            _, target, transitive = _VERBS[verb]
            before, after = parse.word(i - 1), parse.word(i + 1)
            subject = parse.noun_ends.get(i)
            if form == 0:  # base form: after "to", a plural noun or a pronoun
                subject_ok = before in ("to", "they", "we", "you", "i") or (subject is not None and subject.plural)
            elif form == 1:  # -s form: after a singular noun or he/she/it
                subject_ok = before in ("he", "she", "it") or (subject is not None and subject.plural is False)
            else:
                subject_ok = before not in _DETERMINERS
            if transitive:
                object_ok = after not in _PARTICLES and _starts_noun_phrase(parse, i + 1)
            else:
                object_ok = (after is None or parse.is_punct(i + 1) or after in _RELATIONS
                             or after in ("at", "by", "around", "together", "alone", "in", "on", "near", "next")
                             or (after in ("down", "up") and _starts_noun_phrase(parse, i + 2)))
            if subject_ok and object_ok:
                out.append(_Candidate(_Editor(parse).replace(i, i + 1, target[form]).text()))
        i += 1
    return out


def _swap_obj(parse: _Parse) -> list[_Candidate]:
    """Two objects of one group (agents, or things) trade places, each with its attributes ("a brown horse")."""
    nouns = [n for n in _editable_nouns(parse) if n[2].category not in _BACKGROUND and n[2].plural is not None
             and parse.word(n[1]) != "of"]  # "a box of donuts" is not one object
    out = []
    for a, (a0, a1, na, _, attributes_a) in enumerate(nouns):
        for b0, b1, nb, pb, attributes_b in nouns[a + 1 :]:
            if na.concept == nb.concept or na.plural != nb.plural:
                continue
            if (na.category in _ANIMATE) != (nb.category in _ANIMATE):  # "a skateboard riding a boy"
                continue
            between = range(a1, pb)
            if any(parse.word(k) in (".", ";", "!", "?") for k in between):
                continue
            action = any(parse.word(k) in _VERB_FORMS or parse.is_ing_verb(k) for k in between)
            directed = any(
                (match := _relation_at(parse, k)) is not None and match[1] not in _SYMMETRIC_RELATIONS
                for k in between
            )
            # Around "and", "with" or "next to" a swap says the same thing; an action needs agents on both sides.
            if not (directed or action) or (action and na.category not in _ANIMATE):
                continue
            span_a = (min(attributes_a, default=a0), a1)
            span_b = (min(attributes_b, default=b0), b1)
            out.append(_Candidate(_Editor(parse).swap(span_a, span_b).text()))
    return out


def _swap_att(parse: _Parse) -> list[_Candidate]:
    uses = [(i, h) for i, h in _attribute_uses(parse) if h is not None]
    out = []
    for a, (i, head_i) in enumerate(uses):
        for j, head_j in uses[a + 1 :]:
            word_i, word_j = parse.low[i], parse.low[j]
            kind = _ATTRIBUTE_TYPES[word_i]
            if head_i == head_j or kind != _ATTRIBUTE_TYPES[word_j] or word_i == word_j:
                continue
            if kind in ("age", "state"):  # "young"/"new", "busy"/"empty": only between nouns of one group
                ni, nj = parse.nouns.get(head_i), parse.nouns.get(head_j)
                if ni is None or nj is None or (ni[1].category in _ANIMATE) != (nj[1].category in _ANIMATE):
                    continue
            if any(parse.word(k) in (".", ";", "!", "?") for k in range(i, j)):
                continue
            out.append(_Candidate(_Editor(parse).swap((i, i + 1), (j, j + 1)).text()))
    return out


def _add_obj(parse: _Parse) -> list[_Candidate]:
    out = []
    for start, end, noun, _, _ in _editable_nouns(parse):
        if noun.category in _BACKGROUND:
            continue
        after = parse.word(end)
        if parse.is_ing_verb(end):
            tier = 0
        elif after in _RELATIONS or (after is not None and _relation_at(parse, end) is not None):
            tier = 1
        elif after is None or after in (".", "!", "?", ";"):
            tier = 2
        else:
            continue
        if noun.plural is not True:  # a singular subject of a later singular verb would lose its agreement
            s0, s1 = parse.sentence_of(start)
            if any(parse.word(k) in _FINITE_SINGULAR
                   or (parse.word(k) in _VERB_FORMS and _VERB_FORMS[parse.word(k)][1] == 1) for k in range(end, s1)):
                continue
        for lemma in _replacement_nouns(parse, noun):
            added = f"and {_article_for(lemma)} {lemma}"
            out.append(_Candidate(_Editor(parse).insert_after(end - 1, added).text(), tier=tier))
    return out


def _add_att(parse: _Parse) -> list[_Candidate]:
    out = []
    for start, _, noun, phrase_start, attributes in _editable_nouns(parse):
        first = parse.word(phrase_start)
        if phrase_start == start or (first not in _DETERMINERS and not first.isdigit()):
            continue
        present_types = {_ATTRIBUTE_TYPES[parse.low[k]] for k in attributes}
        for option in _ADD_ATTRIBUTES[noun.category]:
            kind = _ATTRIBUTE_TYPES[option]
            if kind in present_types or option in parse.low:
                continue
            # after the determiner and any attribute that comes earlier in English order
            position = phrase_start
            for k in attributes:
                if _ATTRIBUTE_ORDER[_ATTRIBUTE_TYPES[parse.low[k]]] <= _ATTRIBUTE_ORDER[kind]:
                    position = k
            out.append(_Candidate(_Editor(parse).insert_after(position, option).text()))
    return out


# One generator per kind, in the order of NEGATIVE_KINDS.
_GENERATORS = dict(zip(NEGATIVE_KINDS, (_replace_obj, _replace_att, _replace_rel, _swap_obj, _swap_att, _add_obj,
                                        _add_att)))
assert all(f.__name__ == f"_{kind}" for kind, f in _GENERATORS.items())


def _candidates(caption: str, kinds: tuple[str, ...]) -> dict[str, list[_Candidate]]:
    parse = _Parse(caption)
    normalised = " ".join(caption.lower().split())
    result = {}
    for kind in kinds:
        seen, unique = set(), []
        for candidate in _GENERATORS[kind](parse):
            key = " ".join(candidate.text.lower().split())
            if key != normalised and key not in seen:
                seen.add(key)
                unique.append(candidate)
        result[kind] = sorted(unique, key=lambda c: c.tier)  # stable: keeps caption order within a tier
    return result


def _check(caption: str, kind: str | None) -> None:
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"The caption must be a non-empty string, got {caption!r}.")
    if kind is not None and kind not in NEGATIVE_KINDS:
        raise ValueError(f"Unknown negative kind {kind!r}; choose one of {', '.join(NEGATIVE_KINDS)} (or None).")


def _rng(caption: str, seed: int | None) -> random.Random:
    return random.Random(zlib.crc32(caption.encode("utf-8")) if seed is None else seed)


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def applicable_kinds(caption: str) -> tuple[str, ...]:
    """The kinds of `NEGATIVE_KINDS` for which at least one edit of ``caption`` exists, in that order."""
    _check(caption, None)
    candidates = _candidates(caption, NEGATIVE_KINDS)
    return tuple(kind for kind in NEGATIVE_KINDS if candidates[kind])


def generate_negative(caption: str, kind: str | None = None, seed: int | None = None) -> NegativeCaption | None:
    """One rule-based negative caption of ``caption``.

    Args:
        caption: an English image description, e.g. ``"A man riding a horse on a beach."``.
        kind: one of `NEGATIVE_KINDS`, or None to pick, from ``seed``, one of the kinds that apply.
        seed: makes the choice of kind and edit reproducible; None derives a seed from the caption text.

    Returns:
        A `NegativeCaption` whose ``text`` differs from ``caption`` by the change named in ``kind``, or None when no
        edit of the requested kind (or, with ``kind=None``, of any kind) applies to this caption.

    Raises:
        ValueError: an empty caption or an unknown kind (the message lists the kinds).

    Example:
        >>> generate_negative("A dog chasing a cat in the park.", kind="swap_obj")
        NegativeCaption(text='A cat chasing a dog in the park.', kind='swap_obj')
    """
    _check(caption, kind)
    kinds = NEGATIVE_KINDS if kind is None else (kind,)
    candidates = _candidates(caption, kinds)
    applicable = [k for k in kinds if candidates[k]]
    if not applicable:
        return None
    rng = _rng(caption, seed)
    chosen_kind = rng.choice(applicable)
    options = candidates[chosen_kind]
    best = [c for c in options if c.tier == options[0].tier]
    return NegativeCaption(rng.choice(best).text, chosen_kind)


def propose_negatives(caption: str, n: int, seed: int | None = None,
                      kinds: tuple[str, ...] | None = None) -> list[NegativeCaption]:
    """Up to ``n`` distinct negative captions of ``caption``, spread over the kinds that apply.

    Kinds take turns (in an order drawn from ``seed``); within a kind, preferred edits come first, drawn from
    ``seed``. Fewer than ``n`` come back when the caption does not allow more; none when no kind applies.

    Example:
        >>> [n.kind for n in propose_negatives("A small dog sitting on a red couch.", 3, seed=0)]  # doctest: +SKIP
        ['replace_att', 'add_obj', 'replace_rel']
    """
    if n < 0:
        raise ValueError(f"n must be zero or more, got {n}.")
    for kind in kinds or ():
        _check(caption, kind)
    _check(caption, None)
    rng = _rng(caption, seed)
    candidates = _candidates(caption, tuple(kinds) if kinds else NEGATIVE_KINDS)
    queues = {}
    for kind, options in candidates.items():
        tiers = sorted({c.tier for c in options})
        queue = []
        for tier in tiers:
            group = [c for c in options if c.tier == tier]
            rng.shuffle(group)
            queue.extend(group)
        if queue:
            queues[kind] = queue
    order = list(queues)
    rng.shuffle(order)
    chosen: list[NegativeCaption] = []
    seen: set[str] = set()
    while len(chosen) < n and any(queues[k] for k in order):
        for kind in order:
            if len(chosen) >= n:
                break
            while queues[kind]:
                candidate = queues[kind].pop(0)
                if candidate.text not in seen:
                    seen.add(candidate.text)
                    chosen.append(NegativeCaption(candidate.text, kind))
                    break
    return chosen
