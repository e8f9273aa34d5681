"""TripletData as an evaluation set: each row (image, caption, negative image, negative caption) is a Winoground
item, scored with Winoground's text / image / group rule (`tasks.winoground`), per ``negative_kind`` too."""

from __future__ import annotations

from dataset_builders import schema

from .winoground import WinogroundBenchmark

TRIPLETDATA_COLUMNS = (schema.IMAGE, schema.NEGATIVE_IMAGE, schema.CAPTION, schema.NEGATIVE_CAPTION)


class TripletDataBenchmark(WinogroundBenchmark):
    """TripletData as an evaluation set: each triplet (x, y, x', y') scored Winoground-style, with
    caption_0 = caption, image_0 = image, caption_1 = negative caption, image_1 = negative image."""

    name = "tripletdata"
    card = ("Compositional image-text matching", "tripletdata", "TripletData (Winoground-style)")
    world_card = ("Held-out TripletData of the TripletCLIP procedural world", "tripletclip-world-test")
    folder_names = ()
    headline = None
    required = TRIPLETDATA_COLUMNS
    optional = (schema.NEGATIVE_KIND,)
    image_columns = (schema.IMAGE, schema.NEGATIVE_IMAGE)
    pair_columns = TRIPLETDATA_COLUMNS
    default_tag_column = schema.NEGATIVE_KIND
