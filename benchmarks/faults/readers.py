"""Every reader of the release, fed the hostile corpus (`benchmarks.faults.hostile`): what each did with each case.

One row per case: the hostile value in the column under test, every other value valid. Each reader returns a
:class:`ReaderResult`: per case the expected outcome (used, or skipped under a reason), what the reader did, and
whether that matches; plus the reader's own skip counts, which must equal the expected ones (nothing skipped without
being counted, nothing counted that was used). Readers: the collator, the trainer's stream, a TripletData folder,
the released WebDataset shards (converted), the synthesis input, SugarCrepe and retrieval evaluation, and the
Space's upload.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .hostile import LONG_CAPTION, USED, Case, caption_cases, check_picture, image_cases

VALID_CAPTION = "a red circle to the left of a blue square"
VALID_NEGATIVE = "a blue circle to the left of a red square"


@dataclass
class CaseResult:
    case: str
    column: str
    expected: str
    outcome: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.outcome and not self.detail


@dataclass
class ReaderResult:
    reader: str
    cases: list[CaseResult] = field(default_factory=list)
    counted: Counter = field(default_factory=Counter)  # the reader's own skip counts
    not_applicable: list[str] = field(default_factory=list)  # cases the reader's format cannot hold
    crashed: str | None = None

    @property
    def expected_counts(self) -> Counter:
        return Counter(c.expected for c in self.cases if c.expected != USED)

    @staticmethod
    def expected_counts_for(entries) -> Counter:
        return Counter(case.outcome for case, _, _ in entries if case.outcome != USED)

    @property
    def survived(self) -> int:
        if self.crashed:
            return 0
        return sum(c.ok for c in self.cases) if self.counted == self.expected_counts else 0

    @property
    def silently_dropped(self) -> int:
        """Rows neither used nor counted: the reader's counts fall short of the rows it did not use."""
        unused = sum(c.outcome != USED for c in self.cases)
        return max(0, unused - sum(self.counted.values()))


def _valid_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 36), (30, 60, 200)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def corpus_rows(*, text_captions: bool = False, paths: dict[str, Path] | None = None) -> list[tuple[Case, str, dict]]:
    """``(case, column, row)``: one TripletData row per hostile image and per hostile caption.

    ``text_captions``: the format stores captions as text, so bytes that are not UTF-8 cannot occur (left out).
    """
    negative = {"bytes": _valid_jpeg(), "path": None}
    rows = []
    for number, case in enumerate(image_cases()):
        image = None if case.value is None else {"bytes": case.value, "path": case.file_name}
        rows.append((case, "image", {"id": f"image-{number}", "image": image, "caption": VALID_CAPTION,
                                     "negative_image": negative, "negative_caption": VALID_NEGATIVE}))
    for number, case in enumerate(caption_cases()):
        if text_captions and isinstance(case.value, bytes):
            continue
        rows.append((case, "caption", {"id": f"caption-{number}", "image": {"bytes": _valid_jpeg(), "path": None},
                                       "caption": case.value, "negative_image": negative,
                                       "negative_caption": VALID_NEGATIVE}))
    return rows


def _caption_detail(case: Case, text: str | None, max_length_tokens: int | None = None) -> str:
    if case.outcome != USED or text is None:
        return ""
    if "cleaned" in case.notes and text != case.notes["cleaned"]:
        return f"caption read as {text!r}, expected {case.notes['cleaned']!r}"
    return ""


def _outcomes_from_counts(result: ReaderResult, entries, used_ids: set[str], pictures: dict[str, object] | None,
                          texts: dict[str, str] | None = None) -> None:
    """Per case: used when its row is among ``used_ids`` (its picture and caption checked when given), else the
    reason it was expected to be skipped under (the totals are checked against the reader's counts)."""
    for case, column, row in entries:
        if row["id"] in used_ids:
            detail = ""
            if column == "image" and pictures is not None and row["id"] in pictures:
                detail = check_picture(case, pictures[row["id"]]) or ""
            if column == "caption" and texts is not None and row["id"] in texts:
                detail = _caption_detail(case, texts[row["id"]])
            result.cases.append(CaseResult(case.name, column, case.outcome, USED, detail))
        else:
            result.cases.append(CaseResult(case.name, column, case.outcome,
                                           case.outcome if case.outcome != USED else "dropped"))


# ---------------------------------------------------------------------------------------------------- the readers


def read_with_collator(processor) -> ReaderResult:
    """`TripletCollator` on the rows, and `decode_row` (the function it calls) for the pictures and texts."""
    from dataset_builders.batches import TripletCollator
    from dataset_builders.rows import decode_row

    entries = corpus_rows()
    result = ReaderResult("collator (TripletCollator)")
    collator = TripletCollator(processor)
    batch = collator([row for _, _, row in entries])
    used, pictures, texts = set(), {}, {}
    for case, column, row in entries:
        decoded, reason = decode_row(row)
        if reason is None:
            used.add(row["id"])
            pictures[row["id"]], texts[row["id"]] = decoded.image, decoded.caption
    _outcomes_from_counts(result, entries, used, pictures, texts)
    result.counted = Counter(collator.skipped)
    if batch.get("pixel_values") is None or batch["pixel_values"].shape[0] != len(used):
        result.crashed = f"the batch has {0 if not batch else batch['pixel_values'].shape[0]} rows, {len(used)} usable"
    if collator.truncated != 1:
        result.crashed = f"{collator.truncated} captions counted as truncated, expected 1 (the long caption)"
    return result


def _binary_dataset(entries):
    import datasets

    features = datasets.Features({"id": datasets.Value("string"), "caption": datasets.Value("binary"),
                                  "negative_caption": datasets.Value("binary"), "image": datasets.Image(decode=False),
                                  "negative_image": datasets.Image(decode=False)})
    rows = []
    for _, _, row in entries:
        rows.append({**row, "caption": row["caption"].encode() if isinstance(row["caption"], str) else row["caption"],
                     "negative_caption": row["negative_caption"].encode()})
    return datasets.Dataset.from_list(rows, features=features)


def read_with_stream(processor) -> ReaderResult:
    """The trainer's `TripletBatches` (two workers): one full batch of the usable rows, the rest counted."""
    from dataset_builders.batches import TripletCollator
    from dataset_builders.batches import TripletBatches

    entries = corpus_rows()
    closing = corpus_rows()[0]  # a valid row last, so that one full batch reads the whole corpus
    closing = (closing[0], closing[1], {**closing[2], "id": "closing"})
    expected_used = [row["id"] for case, _, row in entries if case.outcome == USED]
    result = ReaderResult("trainer's stream (TripletBatches, streaming, 2 workers)")
    collator = TripletCollator(processor, negative_captions=True, negative_images=True, reduced_image_decoding=True,
                               normalize_images=False)
    dataset = _binary_dataset([*entries, closing]).to_iterable_dataset(num_shards=2)
    batches = TripletBatches(dataset, collator, per_process_batch_size=len(expected_used) + 1, seed=0,
                             streaming=True, num_workers=2)
    try:
        batch = next(batches)
    finally:
        batches.close()
    if batch["pixel_values"].shape[0] != len(expected_used) + 1:
        result.crashed = "the batch is not full"
    result.counted = Counter(batches.stats.skipped)
    used = set(expected_used) if batches.position.index == len(entries) + 1 else set()
    _outcomes_from_counts(result, entries, used, None)
    return result


def read_tripletdata_folder(processor, folder: Path) -> ReaderResult:
    """A TripletData folder (Hub layout, as the world and synthesis write it) read back by `load_tripletdata`."""
    from dataset_builders import load_tripletdata, write_tripletdata
    from dataset_builders.batches import TripletCollator, defer_image_decoding

    entries = corpus_rows(text_captions=True)
    result = ReaderResult("TripletData folder (load_tripletdata)")
    result.not_applicable = [c.name for c in caption_cases() if isinstance(c.value, bytes)]
    write_tripletdata([row for _, _, row in entries], folder, progress=False, card=True)
    dataset = defer_image_decoding(load_tripletdata(folder))
    collator = TripletCollator(processor)
    used = set()
    for row in dataset:
        before = sum(collator.skipped.values())
        collator([row])
        if sum(collator.skipped.values()) == before:
            used.add(row["id"])
    result.counted = Counter(collator.skipped)
    _outcomes_from_counts(result, entries, used, None)
    return result


def write_released_shards(entries, folder: Path, per_shard: int = 8) -> list[Path]:
    """The rows as the released TripletData stores them: tar shards of ``KEY.image``, ``KEY.neg_image``,
    ``KEY.caption``, ``KEY.neg_caption`` members (a missing value is a missing member)."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for start in range(0, len(entries), per_shard):
        path = folder / f"{start // per_shard:05d}.tar"
        with tarfile.open(path, "w") as archive:
            for _, _, row in entries[start : start + per_shard]:
                members = {"image": row["image"] and row["image"]["bytes"],
                           "neg_image": row["negative_image"]["bytes"],
                           "caption": row["caption"].encode() if isinstance(row["caption"], str) else row["caption"],
                           "neg_caption": row["negative_caption"].encode()}
                for suffix, data in members.items():
                    if data is None:
                        continue
                    info = tarfile.TarInfo(f"{row['id']}.{suffix}")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
        shards.append(path)
    return shards


def read_released_shards(work: Path) -> ReaderResult:
    """The released WebDataset layout through `convert_official_shards` (the reader every other path shares)."""
    from dataset_builders import load_tripletdata
    from dataset_builders.released_shards import convert_official_shards

    entries = corpus_rows()
    result = ReaderResult("released WebDataset shards (convert-webdataset)")
    write_released_shards(entries, work / "shards")
    report = convert_official_shards(str(work / "shards"), work / "converted", progress=False)
    result.counted = Counter(report.skipped)
    converted = load_tripletdata(work / "converted")
    texts = {row["id"].rsplit("/", 1)[-1]: row["caption"] for row in converted}  # ids are "<shard>/<key>"
    _outcomes_from_counts(result, entries, set(texts), None, texts)
    return result


def read_synthesis_input(work: Path) -> ReaderResult:
    """`synthesize --rules --image_column image` on an input dataset holding the hostile images and captions."""
    from dataset_builders import load_tripletdata, write_tripletdata
    from dataset_builders.synthesis.runner import SynthesisConfig, run_synthesis

    entries = corpus_rows(text_captions=True)
    result = ReaderResult("synthesis input (synthesize --rules)")
    result.not_applicable = [c.name for c in caption_cases() if isinstance(c.value, bytes)]
    write_tripletdata([{"id": r["id"], "image": r["image"], "caption": r["caption"],
                        "negative_image": r["negative_image"], "negative_caption": r["negative_caption"]}
                       for _, _, r in entries], work / "input", progress=False, card=True)
    report = run_synthesis(SynthesisConfig(dataset=str(work / "input"), output_dir=str(work / "output"), rules=True,
                                           caption_column="caption",
                                        image_column="image", rows_per_shard=8, progress=False))
    result.counted = Counter(report.rejected)
    if report.shortened != 1:
        result.crashed = f"{report.shortened} captions counted as cut, expected 1 (the long caption)"
    output = load_tripletdata(work / "output")
    # synthesis numbers its output rows by input position
    by_position = {str(i): row for i, (_, _, row) in enumerate(entries)}
    used = {by_position[row["id"]]["id"] for row in output}
    texts = {by_position[row["id"]]["id"]: row["caption"] for row in output}
    _outcomes_from_counts(result, entries, used, None, texts)
    return result


def _evaluation_images(entries, folder: Path) -> dict[str, str]:
    """Write each row's image under its case's file name; a missing image gets a name with no file."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for _, _, row in entries:
        name = f"{row['id']}-{(row['image'] or {}).get('path') or 'missing.png'}"
        if row["image"] is not None:
            (folder / name).write_bytes(row["image"]["bytes"])
        names[row["id"]] = name
    return names


def _by_totals(result: ReaderResult, entries, scored: int) -> None:
    """Per case outcomes of a reader that reports counts only (evaluation): when the reader's counts equal the
    expected ones and it scored exactly the usable rows, every case went as expected; otherwise none is trusted."""
    expected_used = sum(case.outcome == USED for case, _, _ in entries)
    trusted = result.counted == result.expected_counts_for(entries) and scored == expected_used
    for case, column, _ in entries:
        result.cases.append(CaseResult(case.name, column, case.outcome, case.outcome if trusted else "unknown"))


def read_sugarcrepe(model, processor, work: Path) -> ReaderResult:
    """SugarCrepe-format evaluation: one item per row, its image file the hostile one, its caption from the JSON.

    A missing image file is refused up front, for the whole run (a wrong --images folder), so that case is left out;
    text captions cannot hold bytes that are not UTF-8."""
    from modeling_tripletclip.evaluation.suite import evaluate_model_detailed

    entries = [(case, column, row) for case, column, row in corpus_rows(text_captions=True) if row["image"] is not None]
    result = ReaderResult("SugarCrepe evaluation (image files, JSON captions)")
    result.not_applicable = ["no image (None)"] + [c.name for c in caption_cases() if isinstance(c.value, bytes)]
    names = _evaluation_images(entries, work / "images")
    items = {str(i): {"filename": names[row["id"]], "caption": row["caption"], "negative_caption": VALID_NEGATIVE}
             for i, (_, _, row) in enumerate(entries)}
    (work / "add_obj.json").write_text(json.dumps(items), encoding="utf-8")
    outcome = evaluate_model_detailed(model, processor, {"sugarcrepe": str(work)}, images=str(work / "images"),
                                      progress=False)["sugarcrepe"]
    result.counted = Counter(outcome.skipped_reasons)
    _by_totals(result, entries, outcome.num_scored)
    return result


def read_retrieval(model, processor, work: Path) -> ReaderResult:
    """Retrieval evaluation on a dataset with an image and two captions per row (the hostile one and a valid one):
    an unusable image leaves its row out; an unreadable caption is left out, its image kept."""
    import datasets

    from modeling_tripletclip.evaluation.suite import evaluate_model_detailed

    entries = corpus_rows()
    result = ReaderResult("retrieval evaluation (image + captions dataset)")
    features = datasets.Features({"image": datasets.Image(decode=False),
                                  "captions": datasets.Sequence(datasets.Value("binary"))})
    rows = [{"image": row["image"], "captions": [row["caption"].encode() if isinstance(row["caption"], str)
                                                 else row["caption"], VALID_NEGATIVE.encode()]}
            for _, _, row in entries]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(work / "retrieval"))
    outcome = evaluate_model_detailed(model, processor, {"retrieval": str(work / "retrieval")},
                                      progress=False)["retrieval"]
    result.counted = Counter(outcome.skipped_reasons)
    images_used = sum(case.outcome == USED or column == "caption" for case, column, _ in entries)
    expected_used = sum(case.outcome == USED for case, _, _ in entries)
    _by_totals(result, entries, outcome.num_scored - images_used + expected_used)
    return result


def read_space_upload(work: Path) -> ReaderResult:
    """The Space's upload path (`spaces/app.py` ``load_image``): used, or refused with a message."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("tripletclip_space_app",
                                                  Path(__file__).resolve().parents[2] / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = app
    spec.loader.exec_module(app)
    result = ReaderResult("Space upload (spaces/app.py)")
    refused: Counter = Counter()
    work.mkdir(parents=True, exist_ok=True)
    for number, case in enumerate(image_cases()):
        path = None
        if case.value is not None:
            path = work / f"{number}-{case.file_name}"
            path.write_bytes(case.value)
        try:
            image = app.load_image(str(path) if path else None)
        except app.InputError as error:  # refused with a message: the Space's way of skipping
            reason = case.outcome if case.outcome != USED else "refused"
            refused[reason] += 1
            detail = "" if str(error).strip() else "refused without a message"
            result.cases.append(CaseResult(case.name, "image", case.outcome, reason, detail))
            continue
        result.cases.append(CaseResult(case.name, "image", case.outcome, USED, check_picture(case, image) or ""))
    result.counted = refused
    return result


__all__ = ["CaseResult", "LONG_CAPTION", "ReaderResult", "corpus_rows", "read_released_shards", "read_retrieval",
           "read_space_upload", "read_sugarcrepe", "read_synthesis_input", "read_tripletdata_folder",
           "read_with_collator", "read_with_stream", "write_released_shards"]
