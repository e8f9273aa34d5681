"""The hostile-file corpus (made here, nothing downloaded) through every reader of the release.

Each case is one row whose image or caption is hostile (truncated JPEG and PNG, a zero-byte file, a PNG under a
.jpg name, CMYK and YCCK JPEGs, 16-bit, palette-with-transparency and LA PNGs, an EXIF-rotated photo, an animated
GIF, a decompression bomb, SVG and HTML bytes, no image; a caption that is not UTF-8, 100,000 characters, control
characters, white space only, none). A reader must use the row correctly (the picture as a viewer shows it, the
caption cleaned) or skip it and count it under its reason: no crash, no silent drop. The counts by reason are
written out here, per reader, from the corpus's definition.
"""

from collections import Counter

from benchmarks.faults import readers
from benchmarks.faults.hostile import LONG_CAPTION, caption_cases, image_cases

IMAGE_SKIPS = Counter({"undecodable image": 5, "image too large": 1, "missing image": 1})
CAPTION_SKIPS = Counter({"undecodable caption": 1, "empty caption": 2})
TEXT_CAPTION_SKIPS = Counter({"empty caption": 2})  # a text column cannot hold bytes that are not UTF-8


def test_the_corpus_is_what_the_counts_below_assume():
    images, captions = image_cases(), caption_cases()
    assert len(images) == 16 and len(captions) == 6
    assert Counter(case.outcome for case in images if case.outcome != "used") == IMAGE_SKIPS
    assert Counter(case.outcome for case in captions if case.outcome != "used") == CAPTION_SKIPS
    assert len(LONG_CAPTION) >= 100_000
    bomb = next(case for case in images if "bomb" in case.name)
    assert len(bomb.value) < 200_000  # a small file that would decode to 400 megapixels


def _assert_every_case(result, expected_skips: Counter, cases: int) -> None:
    wrong = [f"{c.case} ({c.column}): {c.outcome} {c.detail}, expected {c.expected}" for c in result.cases if not c.ok]
    assert result.crashed is None, result.crashed
    assert not wrong, wrong
    assert len(result.cases) == cases
    assert result.counted == expected_skips  # the reader's own counts, by reason
    assert result.silently_dropped == 0
    assert result.survived == cases


def test_collator_uses_or_counts_every_hostile_row(tiny_model_and_processor):
    _, processor = tiny_model_and_processor
    result = readers.read_with_collator(processor)  # also asserts one truncated caption and a batch of the usable
    _assert_every_case(result, IMAGE_SKIPS + CAPTION_SKIPS, 22)


def test_trainer_stream_with_two_workers_keeps_the_batch_full(tiny_model_and_processor):
    _, processor = tiny_model_and_processor
    _assert_every_case(readers.read_with_stream(processor), IMAGE_SKIPS + CAPTION_SKIPS, 22)


def test_tripletdata_folder(tiny_model_and_processor, tmp_path):
    _, processor = tiny_model_and_processor
    _assert_every_case(readers.read_tripletdata_folder(processor, tmp_path / "folder"),
                       IMAGE_SKIPS + TEXT_CAPTION_SKIPS, 21)


def test_released_webdataset_shards(tmp_path):
    _assert_every_case(readers.read_released_shards(tmp_path), IMAGE_SKIPS + CAPTION_SKIPS, 22)


def test_synthesis_input(tmp_path):
    result = readers.read_synthesis_input(tmp_path)
    _assert_every_case(result, IMAGE_SKIPS + TEXT_CAPTION_SKIPS, 21)


def test_sugarcrepe_evaluation(tiny_model_and_processor, tmp_path):
    model, processor = tiny_model_and_processor
    result = readers.read_sugarcrepe(model, processor, tmp_path)
    _assert_every_case(result, Counter({"undecodable image": 5, "image too large": 1}) + TEXT_CAPTION_SKIPS, 20)


def test_retrieval_evaluation(tiny_model_and_processor, tmp_path):
    model, processor = tiny_model_and_processor
    _assert_every_case(readers.read_retrieval(model, processor, tmp_path), IMAGE_SKIPS + CAPTION_SKIPS, 22)


def test_space_upload(tmp_path):
    _assert_every_case(readers.read_space_upload(tmp_path), IMAGE_SKIPS, 16)
