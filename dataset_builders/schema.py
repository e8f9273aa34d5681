"""The TripletData schema: one row is one triplet ``(image, caption, negative_image, negative_caption)``.

A triplet pairs a real image ``x`` and its caption ``y`` with a hard-negative caption ``y'`` (a small but decisive
change of ``y``) and a hard-negative image ``x'`` that depicts ``y'``. Every reader and writer of the package goes
through the names and features declared here, so a column is spelled the same way everywhere.

Optional metadata columns (``id``, ``negative_kind``, ``clip_score``, ``vqa_score``) may be present or absent;
readers tolerate both.

The same module declares the two benchmark layouts the procedural world writes in the Hub layout: Winoground-style
pairs of pairs and retrieval (one image, several captions).

Importing this module needs only the standard library (`datasets` is imported by the functions that build features).
The values of ``negative_kind`` are SugarCrepe's seven kinds, defined with the rules that make them:
`dataset_builders.synthesis.rules.NEGATIVE_KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .utils.errors import InputError

if TYPE_CHECKING:
    import datasets


class NotTripletDataError(InputError):
    """Raised when a folder or Hub dataset does not hold TripletData (or the layout a reader expects)."""


IMAGE = "image"
CAPTION = "caption"
NEGATIVE_IMAGE = "negative_image"
NEGATIVE_CAPTION = "negative_caption"

REQUIRED_COLUMNS: tuple[str, ...] = (IMAGE, CAPTION, NEGATIVE_IMAGE, NEGATIVE_CAPTION)
IMAGE_COLUMNS: tuple[str, ...] = (IMAGE, NEGATIVE_IMAGE)
CAPTION_COLUMNS: tuple[str, ...] = (CAPTION, NEGATIVE_CAPTION)

ID = "id"
NEGATIVE_KIND = "negative_kind"
CLIP_SCORE = "clip_score"
VQA_SCORE = "vqa_score"

def _required_features() -> dict[str, Any]:
    import datasets

    return {
        IMAGE: datasets.Image(),
        CAPTION: datasets.Value("string"),
        NEGATIVE_IMAGE: datasets.Image(),
        NEGATIVE_CAPTION: datasets.Value("string"),
    }


def metadata_features() -> dict[str, Any]:
    """The optional metadata columns a triplet row may carry, by name.

    * ``id`` (string): a stable identifier of the row, unique within the dataset;
    * ``negative_kind`` (string): how the negative caption was made, one of SugarCrepe's seven kinds for rule-based or
      world negatives, or a free label such as ``"llm"``;
    * ``clip_score`` (float32): the triplet's CLIP score ``(s(x, y) + s(x', y')) / 2`` used by quality filtering;
    * ``vqa_score`` (float32): the share of "yes" answers of the VQA quality check on the negative image.
    """
    import datasets

    return {
        ID: datasets.Value("string"),
        NEGATIVE_KIND: datasets.Value("string"),
        CLIP_SCORE: datasets.Value("float32"),
        VQA_SCORE: datasets.Value("float32"),
    }


METADATA_COLUMNS: tuple[str, ...] = (ID, NEGATIVE_KIND, CLIP_SCORE, VQA_SCORE)


def triplet_features(
    extra_columns: Iterable[str] | Mapping[str, Any] = (),
) -> "datasets.Features":
    """Features of a TripletData row: the four required columns followed by the requested extra columns.

    Args:
        extra_columns: names of metadata columns (any of :data:`METADATA_COLUMNS`, typed as documented in
            :func:`metadata_features`), or a mapping ``name -> feature`` for columns of your own. A name that is not a
            known metadata column must come with its feature.

    Returns:
        `datasets.Features` with ``image`` and ``negative_image`` as `datasets.Image` and the captions as
        ``Value("string")``.

    Example:
        >>> triplet_features(["id", "negative_kind"])  # doctest: +ELLIPSIS
        {'image': Image(...), 'caption': Value('string'), ..., 'id': Value('string'), 'negative_kind': Value('string')}
    """
    import datasets

    features = _required_features()
    known = metadata_features()
    if isinstance(extra_columns, Mapping):
        items = list(extra_columns.items())
    else:
        items = []
        for name in extra_columns:
            if name not in known:
                raise ValueError(
                    f"Unknown metadata column {name!r}: known ones are {', '.join(METADATA_COLUMNS)}. "
                    f"Pass a mapping {{{name!r}: datasets.Value(...)}} to declare a column of your own."
                )
            items.append((name, known[name]))
    for name, feature in items:
        if name in features:
            raise ValueError(f"Column {name!r} is a required TripletData column; do not list it in extra_columns.")
        features[name] = feature
    return datasets.Features(features)


# Winoground-style benchmark: two images and two captions that use the same words in a different composition.
IMAGE_0, IMAGE_1, CAPTION_0, CAPTION_1, TAG = "image_0", "image_1", "caption_0", "caption_1", "tag"
WINOGROUND_COLUMNS: tuple[str, ...] = (IMAGE_0, IMAGE_1, CAPTION_0, CAPTION_1, TAG)


def winoground_features() -> "datasets.Features":
    """Features of a Winoground-style row (the ``facebook/winoground`` column names, plus ``id``).

    ``caption_0`` describes ``image_0`` and ``caption_1`` describes ``image_1``; ``tag`` names the kind of change
    between the two (a negative kind, for the procedural world).
    """
    import datasets

    return datasets.Features(
        {
            ID: datasets.Value("string"),
            IMAGE_0: datasets.Image(),
            IMAGE_1: datasets.Image(),
            CAPTION_0: datasets.Value("string"),
            CAPTION_1: datasets.Value("string"),
            TAG: datasets.Value("string"),
        }
    )


# Retrieval benchmark: one image, several captions that all describe it.
CAPTIONS = "captions"
RETRIEVAL_COLUMNS: tuple[str, ...] = (IMAGE, CAPTIONS)


def retrieval_features() -> "datasets.Features":
    """Features of a retrieval row: ``image`` and ``captions`` (a list of strings, all describing the image)."""
    import datasets

    return datasets.Features(
        {
            ID: datasets.Value("string"),
            IMAGE: datasets.Image(),
            CAPTIONS: datasets.List(datasets.Value("string")),
        }
    )


# The released TripletData (WebDataset shards): its own key names, mapped onto the schema's here and only here.
#: Official field name -> TripletData column: the one mapping of the released layout.
OFFICIAL_FIELDS: dict[str, str] = {
    "image": IMAGE,
    "neg_image": NEGATIVE_IMAGE,
    "caption": CAPTION,
    "neg_caption": NEGATIVE_CAPTION,
}


def official_raw_features():
    """The official samples as datasets' WebDataset loader gives them: key, shard URL and four raw byte fields."""
    import datasets

    features = {"__key__": datasets.Value("string"), "__url__": datasets.Value("string")}
    features.update({name: datasets.Value("binary") for name in OFFICIAL_FIELDS})
    return datasets.Features(features)


def is_official(columns: Iterable[str]) -> bool:
    """Whether columns are the released layout's (``neg_image`` / ``neg_caption`` are its own names)."""
    columns = set(columns)
    return bool({"neg_image", "neg_caption"} & columns) and NEGATIVE_IMAGE not in columns


def from_official(dataset):
    """A `datasets` dataset read from official shards, with the schema's column names (other datasets unchanged)."""
    columns = list(dataset.features) if dataset.features is not None else []
    if not is_official(columns):
        return dataset
    return dataset.rename_columns({old: new for old, new in OFFICIAL_FIELDS.items() if old in columns and old != new})
