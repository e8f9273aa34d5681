"""ARO (Yuksekgonul et al., ICLR 2023, "When and why vision-language models behave like bags-of-words"): VG-Relation and
VG-Attribution, a Visual Genome image cropped to a box with a true caption and its swapped false caption; COCO-Order
and Flickr30k-Order, a COCO / Flickr30k test image with one of its captions and four word-order perturbations of it.

**Data** (VG): the folder the official code downloads: ``visual_genome_relation.json`` and / or
``visual_genome_attribution.json`` (lists of ``image_path``, ``bbox_x``, ``bbox_y``, ``bbox_w``, ``bbox_h``,
``true_caption``, ``false_caption``, and ``relation_name`` or ``attributes``) with ``images/``.

**Data** (Order): in the same folder, or in its sub-folder ``coco/`` (``flickr30k/``), the first found of:

1. ``coco_order.json`` / ``flickr30k_order.json``, precomputed options: a JSON list of ``{"image": "<path relative to
   the folder holding the file>", "caption_options": [the right caption, perturbation, ...]}``, as the official
   dataset's ``test_cases`` are (``json.dump(COCO_Order(...).test_cases, file)``): five options, the first right (every
   item the same number, at least two). Scored as given, without spaCy.
2. a folder ``coco_order/`` / ``flickr30k_order/`` holding a copy of the Hub mirror :data:`ORDER_MIRRORS`
   (``gowitheflow/ARO-COCO-order``, ``gowitheflow/ARO-Flickr-Order``: columns ``images``, ``correct_caption``,
   ``hard_text_1`` ... ``hard_text_4``, split ``test``), downloaded (Hub layout) or ``save_to_disk``-ed. The mirror's
   Hub id may also be given as the data itself (that part alone is then scored). Its captions are scored as
   published; they were not checked against the official code's.
3. the Karpathy test split the official code downloads: ``coco_karpathy_test.json`` (images ``val2014/...``) /
   ``flickr30k_test.json`` (images ``flickr30k-images/...``), lists of ``{"image": path, "caption": [captions]}``, the
   images relative to the folder holding the JSON. The options are then generated as the official code does, which
   needs spaCy's English model and NLTK's punkt tokenizer (:data:`INSTALL_ORDER_TOOLS`).

**Generated options** follow ``dataset_zoo/aro_datasets.py`` (``COCO_Order.__init__``, ``Flickr30k_Order.__init__``)
with ``dataset_zoo/perturbations.py`` (``TextShuffler``): one item per caption (the images in the file's order, each
image's captions in order); its options are ``pre_caption`` (``dataset_zoo/retrieval.py``: lower-cased,
``.!"()*#:;~`` made spaces, runs of whitespace made one, stripped, the first 30 words) of the caption itself and of
``shuffle_nouns_and_adj`` (spaCy ``en_core_web_sm``'s tokens; those tagged NN, NNS, NNP, NNPS permuted among
themselves, then those tagged JJ, JJR, JJS, each with ``np.random.permutation``), ``shuffle_allbut_nouns_and_adj``
(the other tokens permuted), ``shuffle_within_trigrams`` (``nltk.word_tokenize``'s words cut into consecutive
trigrams, each shuffled with ``random.shuffle``) and ``shuffle_trigrams`` (the trigrams' order shuffled), each applied
to the raw caption. ``main_aro.py`` seeds ``random`` and ``np.random`` with 1 (``misc.seed_all``, ``--seed`` default)
before building the dataset, and the shuffles draw from those two global generators caption after caption; here they
draw from ``np.random.RandomState(1)`` and ``random.Random(1)``, made afresh for each part: the same streams. The
options therefore equal the official ones when nothing else drew from the global generators between ``seed_all`` and
the dataset (the model loading there) and with the same spaCy model and NLTK (their versions go in the notes). Tagging
(spaCy) and tokenizing (NLTK) are kept apart from the pure, seeded shuffles (:func:`order_items`).

**Scoring** (VG) follows ``dataset_zoo/aro_datasets.py`` (``VG_Relation.evaluate_scores``,
``VG_Attribution.evaluate_scores``) and the aggregates of ``notebooks/Replicate ARO! VG-Relation,
VG-Attribution.ipynb``: each image is cropped to its box; the prediction is the argmax over [false caption, true
caption], so an exact tie picks the false one (wrong); accuracy per relation and per attribute pair (``"<a>_<b>"``; only
pairs with at least 25 items); ``macro_accuracy`` is the mean over relations leaving out the notebook's 157 relations
listed as symmetric (:data:`SYMMETRIC_RELATIONS`), and the mean over the kept attribute pairs.

**Scoring** (Order) follows ``COCO_Order.evaluate_scores`` and ``Flickr30k_Order.evaluate_scores`` on the cosine
similarities of ``model_zoo/clip_models.py`` (``get_retrieval_scores_batched``): the prediction is ``np.argmax`` over
the options and an item is right when it is option 0, so an exact tie with the right caption picks it (right);
``coco_order/precision@1`` and ``flickr30k_order/precision@1`` are the shares of items right (the official
``Precision@1``). Followed as of the repository's commit 81fdd20.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...encoding import CLIPEncoder, image_source_from_file, image_source_from_value
from ..data import open_dataset, require_columns, undecoded_images
from ..errors import EvaluationInputError
from .base import Benchmark, BenchmarkResult, _chunks, _skipped, _texts
from .whatsup import first_option_correct

RELATION_FILE = "visual_genome_relation.json"
ATTRIBUTION_FILE = "visual_genome_attribution.json"
MIN_ATTRIBUTE_COUNT = 25
CHUNK = 256


@dataclass(frozen=True)
class OrderPart:
    """Where one order part's data is looked for: its Karpathy test JSON (options generated), its precomputed options
    JSON, the sub-folder of the ARO folder it may be in, and its Hub mirror."""

    karpathy: str
    precomputed: str
    subfolder: str
    mirror: str


#: COCO-Order and Flickr30k-Order, named as their metrics are.
ORDER_PARTS = {
    "coco_order": OrderPart("coco_karpathy_test.json", "coco_order.json", "coco", "gowitheflow/ARO-COCO-order"),
    "flickr30k_order": OrderPart("flickr30k_test.json", "flickr30k_order.json", "flickr30k",
                                 "gowitheflow/ARO-Flickr-Order"),
}
#: The Hub mirrors of the order sets, by Hub id: the part each holds.
ORDER_MIRRORS = {part.mirror: name for name, part in ORDER_PARTS.items()}
#: The mirrors' columns: the image, then the options, the right caption first.
MIRROR_COLUMNS = ("images", "correct_caption", "hard_text_1", "hard_text_2", "hard_text_3", "hard_text_4")
#: ``main_aro.py``'s ``--seed`` default, which ``misc.seed_all`` gives ``random`` and ``np.random``.
ORDER_SEED = 1
#: ``COCO_Order``'s and ``Flickr30k_Order``'s ``max_words``: ``pre_caption`` keeps this many words.
MAX_WORDS = 30
SPACY_MODEL = "en_core_web_sm"
NOUN_TAGS = frozenset(["NN", "NNS", "NNP", "NNPS"])
ADJECTIVE_TAGS = frozenset(["JJ", "JJR", "JJS"])
INSTALL_ORDER_TOOLS = ("pip install spacy && python -m spacy download en_core_web_sm; "
                       "python -m nltk.downloader punkt punkt_tab")

#: The relations the official notebook leaves out of VG-Relation's macro accuracy (the data of ARO's notebook).
SYMMETRIC_RELATIONS = frozenset([
    'adjusting', 'attached to', 'between', 'bigger than', 'biting', 'boarding', 'brushing', 'chewing', 'cleaning',
    'climbing', 'close to', 'coming from', 'coming out of', 'contain', 'crossing', 'dragging', 'draped over',
    'drinking', 'drinking from', 'driving', 'driving down', 'driving on', 'eating from', 'eating in', 'enclosing',
    'exiting', 'facing', 'filled with', 'floating in', 'floating on', 'flying', 'flying above', 'flying in',
    'flying over', 'flying through', 'full of', 'going down', 'going into', 'going through', 'grazing in',
    'growing in', 'growing on', 'guiding', 'hanging from', 'hanging in', 'hanging off', 'hanging over',
    'higher than', 'holding onto', 'hugging', 'in between', 'jumping off', 'jumping on', 'jumping over', 'kept in',
    'larger than', 'leading', 'leaning over', 'leaving', 'licking', 'longer than', 'looking in', 'looking into',
    'looking out', 'looking over', 'looking through', 'lying next to', 'lying on top of', 'making', 'mixed with',
    'mounted on', 'moving', 'on the back of', 'on the edge of', 'on the front of', 'on the other side of',
    'opening', 'painted on', 'parked at', 'parked beside', 'parked by', 'parked in', 'parked in front of',
    'parked near', 'parked next to', 'perched on', 'petting', 'piled on', 'playing', 'playing in', 'playing on',
    'playing with', 'pouring', 'reaching for', 'reading', 'reflected on', 'riding on', 'running in', 'running on',
    'running through', 'seen through', 'sitting behind', 'sitting beside', 'sitting by', 'sitting in front of',
    'sitting near', 'sitting next to', 'sitting under', 'skiing down', 'skiing on', 'sleeping in', 'sleeping on',
    'smiling at', 'sniffing', 'splashing', 'sprinkled on', 'stacked on', 'standing against', 'standing around',
    'standing behind', 'standing beside', 'standing in front of', 'standing near', 'standing next to', 'staring at',
    'stuck in', 'surrounding', 'swimming in', 'swinging', 'talking to', 'topped with', 'touching', 'traveling down',
    'traveling on', 'tying', 'typing on', 'underneath', 'wading in', 'waiting for', 'walking across', 'walking by',
    'walking down', 'walking next to', 'walking through', 'working in', 'working on', 'worn on', 'wrapped around',
    'wrapped in', 'by', 'of', 'near', 'next to', 'with', 'beside', 'on the side of', 'around',
])


def _read(path: Path, key: str) -> list[dict]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationInputError(f"{path} is not valid JSON ({error}).") from error
    needed = ("image_path", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "true_caption", "false_caption", key)
    if not isinstance(items, list) or any(not isinstance(i, dict) or any(k not in i for k in needed) for i in items):
        raise EvaluationInputError(f"{path} is not an ARO file: expected a list of objects with {', '.join(needed)}.")
    return items


# Order options: the pure, seeded part ----------------------------------------------------------------------------

#: A tagger gives a caption's tokens and their Penn Treebank tags; a tokenizer gives its words.
Tagger = Callable[[str], tuple[list[str], list[str]]]
Tokenizer = Callable[[str], list[str]]


def pre_caption(caption: str, max_words: int = MAX_WORDS) -> str:
    """A caption as ``dataset_zoo/retrieval.py``'s ``pre_caption`` cleans it: lower-cased, ``.!"()*#:;~`` made spaces,
    runs of two or more whitespace characters made one space, trailing newlines then surrounding spaces removed, and
    only the first ``max_words`` space-separated words kept."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


def shuffle_nouns_and_adj(tokens: Sequence[str], tags: Sequence[str], rng: np.random.RandomState) -> str:
    """``TextShuffler.shuffle_nouns_and_adj`` on a tagged caption: the nouns (:data:`NOUN_TAGS`) permuted among their
    places, then the adjectives (:data:`ADJECTIVE_TAGS`), each with ``rng.permutation``; the tokens joined by spaces."""
    text = np.array(tokens)
    nouns = [i for i, tag in enumerate(tags) if tag in NOUN_TAGS]
    adjectives = [i for i, tag in enumerate(tags) if tag in ADJECTIVE_TAGS]
    text[nouns] = rng.permutation(text[nouns])
    text[adjectives] = rng.permutation(text[adjectives])
    return " ".join(text)


def shuffle_allbut_nouns_and_adj(tokens: Sequence[str], tags: Sequence[str], rng: np.random.RandomState) -> str:
    """``TextShuffler.shuffle_allbut_nouns_and_adj``: the tokens that are neither nouns nor adjectives permuted among
    their places with one ``rng.permutation``; the tokens joined by spaces."""
    text = np.array(tokens)
    others = np.array([tag not in NOUN_TAGS and tag not in ADJECTIVE_TAGS for tag in tags], dtype=bool)
    text[others] = rng.permutation(text[others])
    return " ".join(text)


def trigrams(words: Sequence[str]) -> list[list[str]]:
    """``TextShuffler.get_trigrams``: the words in consecutive groups of three, the last group shorter when their
    number is not a multiple of three."""
    return [list(words[start : start + 3]) for start in range(0, len(words), 3)]


def shuffle_within_trigrams(words: Sequence[str], rng: random.Random) -> str:
    """``TextShuffler.shuffle_within_trigrams`` on tokenized words: each trigram shuffled in turn with
    ``rng.shuffle``; the words joined by spaces."""
    groups = trigrams(words)
    for group in groups:
        rng.shuffle(group)
    return " ".join(" ".join(group) for group in groups)


def shuffle_trigrams(words: Sequence[str], rng: random.Random) -> str:
    """``TextShuffler.shuffle_trigrams`` on tokenized words: the trigrams' order shuffled with one ``rng.shuffle``;
    the words joined by spaces."""
    groups = trigrams(words)
    rng.shuffle(groups)
    return " ".join(" ".join(group) for group in groups)


def order_options(caption: str, tagger: Tagger, tokenizer: Tokenizer, np_rng: np.random.RandomState,
                  py_rng: random.Random, max_words: int = MAX_WORDS) -> list[str]:
    """One caption's five options as ``COCO_Order.__init__`` builds them: ``pre_caption`` of the caption, then of
    :func:`shuffle_nouns_and_adj`, :func:`shuffle_allbut_nouns_and_adj` (both on ``tagger``'s tokens, drawing from
    ``np_rng``), :func:`shuffle_within_trigrams` and :func:`shuffle_trigrams` (both on ``tokenizer``'s words, drawing
    from ``py_rng``), each applied to the raw caption."""
    tokens, tags = tagger(caption)
    words = tokenizer(caption)
    perturbed = [shuffle_nouns_and_adj(tokens, tags, np_rng), shuffle_allbut_nouns_and_adj(tokens, tags, np_rng),
                 shuffle_within_trigrams(words, py_rng), shuffle_trigrams(words, py_rng)]
    return [pre_caption(text, max_words) for text in (caption, *perturbed)]


def order_items(annotation: Sequence[dict], tagger: Tagger, tokenizer: Tokenizer, seed: int = ORDER_SEED,
                max_items: int | None = None) -> list[dict]:
    """The ``test_cases`` that ``COCO_Order`` / ``Flickr30k_Order`` build from a Karpathy split: one
    ``{"image", "caption_options"}`` per caption, the images in order and each image's captions in order, the shuffles
    drawing from one ``np.random.RandomState(seed)`` and one ``random.Random(seed)`` throughout (the official global
    generators after ``seed_all(seed)``). ``max_items`` stops after that many items: the same first items, as the
    generators are used in order."""
    np_rng, py_rng = np.random.RandomState(seed), random.Random(seed)
    items: list[dict] = []
    for entry in annotation:
        for caption in entry["caption"]:
            if max_items is not None and len(items) >= max_items:
                return items
            items.append({"image": entry["image"],
                          "caption_options": order_options(caption, tagger, tokenizer, np_rng, py_rng)})
    return items


def order_precision_at_1(scores) -> float:
    """``COCO_Order.evaluate_scores`` / ``Flickr30k_Order.evaluate_scores``: the share of rows of ``(items, options)``
    scores whose ``np.argmax`` is option 0, the right caption (a tie with it is right); their ``Precision@1``."""
    return float(first_option_correct(scores).mean())


# Order options: the tools (spaCy, NLTK) and the files -----------------------------------------------------------


def _tools_missing(path: Path, part: str, reason: str) -> EvaluationInputError:
    spec = ORDER_PARTS[part]
    return EvaluationInputError(
        f"{path} is ARO's {part} test split, whose caption options are generated by the official code's word-order "
        f"perturbations, which need spaCy's English model {SPACY_MODEL} and NLTK's punkt tokenizer ({reason}). "
        f"Install them: {INSTALL_ORDER_TOOLS}. Or put precomputed options beside it as {spec.precomputed} (a JSON list "
        f'of {{"image": path, "caption_options": [right caption, perturbation, ...]}}, the official test_cases), or a '
        f"copy of the Hub mirror {spec.mirror} as the folder {part}/.")


def spacy_tagger(path: Path, part: str) -> tuple[Tagger, str]:
    """spaCy's :data:`SPACY_MODEL`, loaded as ``TextShuffler`` loads it, as a :data:`Tagger`, and its versions."""
    try:
        import spacy  # optional and heavy: only generating the order options needs it

        nlp = spacy.load(SPACY_MODEL)
    except ImportError as error:
        raise _tools_missing(path, part, f"spaCy is not installed: {error}") from error
    except OSError as error:
        raise _tools_missing(path, part, f"{SPACY_MODEL} could not be loaded: {error}") from error

    def tag(caption: str) -> tuple[list[str], list[str]]:
        doc = nlp(caption)
        return [token.text for token in doc], [token.tag_ for token in doc]

    return tag, f"spaCy {spacy.__version__} with {SPACY_MODEL} {nlp.meta.get('version', '(version unknown)')}"


def nltk_tokenizer(path: Path, part: str) -> tuple[Tokenizer, str]:
    """``nltk.word_tokenize``, as ``TextShuffler`` tokenizes for the trigram shuffles, and NLTK's version."""
    import nltk  # slow to import: only generating the order options needs it

    try:
        nltk.word_tokenize("A man rides a horse.")
    except LookupError as error:
        raise _tools_missing(path, part, "NLTK's punkt tokenizer data is not installed") from error
    return nltk.word_tokenize, f"NLTK {nltk.__version__}"


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationInputError(f"{path} is not valid JSON ({error}).") from error


def read_karpathy(path: Path) -> list[dict]:
    """A Karpathy test split as the official code downloads it: a list of ``{"image": path, "caption": [...]}``."""
    annotation = _load_json(path)
    if not isinstance(annotation, list) or not annotation or not all(
            isinstance(e, dict) and isinstance(e.get("image"), str) and isinstance(e.get("caption"), list)
            and all(isinstance(c, str) for c in e["caption"]) for e in annotation):
        raise EvaluationInputError(f'{path} is not a Karpathy test split: expected a list of {{"image": path, '
                                   f'"caption": [captions]}}, as the official code downloads {path.name}.')
    return annotation


def read_order_items(path: Path) -> list[dict]:
    """Precomputed order items: a list of ``{"image": path, "caption_options": [right caption, ...]}``, every item
    with the same number of options (at least two)."""
    items = _load_json(path)
    if not isinstance(items, list) or not items or not all(
            isinstance(i, dict) and isinstance(i.get("image"), str) and isinstance(i.get("caption_options"), list)
            and len(i["caption_options"]) >= 2 and all(isinstance(c, str) for c in i["caption_options"])
            for i in items):
        raise EvaluationInputError(f'{path} is not an ARO order file: expected a list of {{"image": path, '
                                   f'"caption_options": [right caption, perturbation, ...]}} (at least two options).')
    if len({len(i["caption_options"]) for i in items}) > 1:
        raise EvaluationInputError(f"{path}: every item must have the same number of caption_options.")
    return items


def find_order_parts(root: Path) -> dict[str, tuple[str, Path]]:
    """``{part: (kind, path)}`` of the order parts under the ARO folder ``root`` (in it, or in the part's
    sub-folder): the first found of its precomputed options (kind ``precomputed``), a copy of its Hub mirror
    (``mirror``), its Karpathy test split (``karpathy``)."""
    found = {}
    for name, spec in ORDER_PARTS.items():
        candidates = [(kind, folder / entry) for kind, entry in
                      (("precomputed", spec.precomputed), ("mirror", name), ("karpathy", spec.karpathy))
                      for folder in (root, root / spec.subfolder)]
        for kind, path in candidates:
            if (path.is_dir() if kind == "mirror" else path.is_file()):
                found[name] = (kind, path)
                break
    return found


@dataclass
class _OrderData:
    """One order part to score: items with image files under ``folder``, or a mirror ``dataset``."""

    note: str
    folder: Path | None = None
    items: list[dict] | None = None
    dataset: object = None


class AROBenchmark(Benchmark):
    """ARO's VG-Relation and VG-Attribution accuracies, per relation / attribute pair and macro-averaged, and its
    COCO-Order and Flickr30k-Order precision@1."""

    name = "aro"
    card = ("Compositional image-text matching", "aro", "ARO")
    folder_names = ("aro", "ARO")
    headline = "vg_relation/macro_accuracy"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        root = Path(str(data))
        self.images = Path(self.options.images) if self.options.images else root / "images"
        self.parts = {}
        self.order: dict[str, _OrderData] = {}
        if str(data) in ORDER_MIRRORS and not root.is_dir():
            self.order[ORDER_MIRRORS[str(data)]] = self._mirror(str(data), ORDER_MIRRORS[str(data)])
            return
        if (root / RELATION_FILE).is_file():
            self.parts["vg_relation"] = (_read(root / RELATION_FILE, "relation_name"), "relation_name")
        if (root / ATTRIBUTION_FILE).is_file():
            self.parts["vg_attribution"] = (_read(root / ATTRIBUTION_FILE, "attributes"), "attributes")
        order_files = find_order_parts(root)
        if not self.parts and not order_files:
            files = [RELATION_FILE, ATTRIBUTION_FILE]
            files += [name for spec in ORDER_PARTS.values() for name in (spec.karpathy, spec.precomputed)]
            raise EvaluationInputError(
                f"{root} holds none of ARO's files ({', '.join(files)}): give the folder of ARO's VG-Relation / "
                f"VG-Attribution files (with images/ beside them) and / or of the COCO-Order / Flickr30k-Order data "
                f"(see modeling_tripletclip.evaluation.tasks.aro), or one of the Hub ids {', '.join(ORDER_MIRRORS)}.")
        if self.options.max_items:
            self.parts = {k: (items[: self.options.max_items], key) for k, (items, key) in self.parts.items()}
        missing = sorted({i["image_path"] for items, _ in self.parts.values() for i in items
                          if not (self.images / i["image_path"]).is_file()})
        if missing:
            raise EvaluationInputError(f"{len(missing)} ARO image(s) are not in {self.images}, e.g. {missing[0]}. Pass "
                                       f"the folder of the Visual Genome images with --images.")
        for part, (kind, path) in order_files.items():
            self.order[part] = self._mirror(path, part) if kind == "mirror" else self._order_files(part, kind, path)

    def _mirror(self, value: str | Path, part: str) -> _OrderData:
        dataset, split = open_dataset(value, split=self.options.split, streaming=self.options.streaming,
                                      what=f"ARO {part} data")
        require_columns(dataset, MIRROR_COLUMNS, f"ARO {part}", str(value))
        dataset = undecoded_images(dataset, ["images"])
        return _OrderData(f"{part}: the options of {value} (split {split}), as published there", dataset=dataset)

    def _order_files(self, part: str, kind: str, path: Path) -> _OrderData:
        if kind == "precomputed":
            items, note = read_order_items(path), f"{part}: the precomputed options of {path}"
        else:
            annotation = read_karpathy(path)
            tagger, tagger_version = spacy_tagger(path, part)
            tokenizer, nltk_version = nltk_tokenizer(path, part)
            items = order_items(annotation, tagger, tokenizer, max_items=self.options.max_items)
            note = (f"{part}: options generated from {path} as the official code does (seed {ORDER_SEED}; "
                    f"{tagger_version}; {nltk_version})")
        if self.options.max_items:
            items = items[: self.options.max_items]
        missing = sorted({i["image"] for i in items if not (path.parent / i["image"]).is_file()})
        if missing:
            raise EvaluationInputError(f"{len(missing)} ARO {part} image(s) are not in {path.parent}, e.g. "
                                       f"{missing[0]}: the images are read relative to the folder holding {path.name}.")
        return _OrderData(note, folder=path.parent, items=items)

    def _order_chunks(self, order: _OrderData):
        """Yield ``(image sources, options per item, whether each item's captions could be read)`` per chunk."""
        if order.items is not None:
            for start in range(0, len(order.items), CHUNK):
                chunk = order.items[start : start + CHUNK]
                sources = [image_source_from_file(order.folder / i["image"]) for i in chunk]
                yield sources, [i["caption_options"] for i in chunk], [True] * len(chunk)
            return
        for start, batch in _chunks(order.dataset, CHUNK, self.options.max_items):
            sources = [image_source_from_value(value, f"row {start + j}, column images")
                       for j, value in enumerate(batch["images"])]
            columns = [_texts(batch[column]) for column in MIRROR_COLUMNS[1:]]
            options = [list(row) for row in zip(*(texts for texts, _ in columns))]
            readable = [all(row) for row in zip(*(ok for _, ok in columns))]
            yield sources, options, readable

    def _crops(self, items: list[dict], start: int):
        sources = []
        for j, item in enumerate(items):
            with Image.open(self.images / item["image_path"]) as image:
                box = (item["bbox_x"], item["bbox_y"], item["bbox_x"] + item["bbox_w"], item["bbox_y"] + item["bbox_h"])
                crop = image.convert("RGB").crop(box)
            sources.append(image_source_from_value(crop, f"{item['image_path']} (item {start + j})"))
        return sources

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        metrics, notes, skipped, total, scored = {}, [], {}, 0, 0
        for part, (items, key) in self.parts.items():
            correct, groups = [], []
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                sources = self._crops(chunk, start)
                images, ok = encoder.encode_images(sources, progress=False)
                _skipped(encoder, sources, ok, skipped)
                true = encoder.encode_texts([i["true_caption"] for i in chunk], progress=False)
                false = encoder.encode_texts([i["false_caption"] for i in chunk], progress=False)
                options = np.stack([(images * false).sum(-1).numpy(), (images * true).sum(-1).numpy()], axis=1)
                for item, scores, good in zip(chunk, options, ok.tolist()):
                    if good:
                        correct.append(int(np.argmax(scores)) == 1)  # np.argmax: a tie picks the false caption
                        groups.append(item[key] if key == "relation_name" else f"{item[key][0]}_{item[key][1]}")
            total += len(items)
            scored += len(correct)
            correct_arr, groups_arr = np.array(correct), np.array(groups, dtype=object)
            kept = []
            for group in sorted(set(groups)):
                mask = groups_arr == group
                if key == "attributes" and mask.sum() < MIN_ATTRIBUTE_COUNT:
                    continue
                metrics[f"{part}/{group}"] = float(correct_arr[mask].mean())
                if key == "attributes" or group not in SYMMETRIC_RELATIONS:
                    kept.append(metrics[f"{part}/{group}"])
            if kept:
                metrics[f"{part}/macro_accuracy"] = float(np.mean(kept))
        if self.parts:
            notes.append("aro: macro_accuracy as ARO's notebook (VG-Relation without its symmetric relations; "
                         "VG-Attribution over pairs with at least 25 items); a tie picks the false caption.")
        for part, order in self.order.items():
            kept = []
            for sources, options, readable in self._order_chunks(order):
                images, ok = encoder.encode_images(sources, progress=False)
                _skipped(encoder, sources, ok, skipped)
                texts = encoder.encode_texts([c for row in options for c in row], progress=False)
                texts = texts.reshape(len(options), len(options[0]), -1)
                scores = (images[:, None, :] * texts).sum(-1).numpy()
                kept += [row for row, good, read in zip(scores, ok.tolist(), readable) if good and read]
                total += len(options)
            scored += len(kept)
            if kept:
                metrics[f"{part}/precision@1"] = order_precision_at_1(np.stack(kept))
            notes.append(order.note)
        if self.order:
            notes.append("aro: <order part>/precision@1 is the share of items whose argmax over the caption options is "
                         "the right caption, the first (np.argmax: a tie with it counts as right).")
        return BenchmarkResult(metrics, num_items=total, num_scored=scored, skipped_images=skipped, notes=notes)
