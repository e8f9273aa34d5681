"""SugarCrepe read from its mirror with the images inside, ``HuggingFaceM4/SugarCrepe_<subset>``, as the Hub stores it:
``data/test-00000-of-00001-<hash>.parquet`` with ``image`` (an ``Image``: COCO JPEG bytes and file name),
``tested_labels`` (``[caption, negative_caption]``) and ``true_label`` (a ``ClassLabel`` over every caption of the seven
subsets: its integer is decoded with the names the parquet metadata and the card's ``dataset_info`` carry), as
``huggingface/smollm``'s ``make_sugarcrepe.py`` pushed it in 2023. Read by Hub id (only `datasets.load_dataset`'s
network edge replaced) and by local copy, and scored against an independent loop that follows SugarCrepe's
``main_eval.py`` (``text_retrieval``: correct when the caption's score is strictly higher)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image, ImageDraw

from conftest import serve_hub_dataset
from dataset_builders.synthesis.rules import NEGATIVE_KINDS, SUGARCREPE_GROUPS
from modeling_tripletclip.cli import main
from modeling_tripletclip.evaluation import CLIPEncoder, EvaluationInputError, load_benchmark
from modeling_tripletclip.evaluation.tasks import BenchmarkOptions
from modeling_tripletclip.evaluation.tasks.sugarcrepe import (
    OFFICIAL_ITEMS,
    REMOVED_UPSTREAM,
    find_sugarcrepe_mirror,
    mirror_count_note,
)
from test_eval_benchmarks import direct_image, direct_text

PREFIX = "HuggingFaceM4/SugarCrepe"
# Per subset: (photo seed, caption, negative caption). Photos 0 and 1 recur across subsets (the same COCO image, the
# same bytes); swap_att's second item has a negative equal to its caption: an exact tie, wrong under the strict rule.
ITEMS = {
    "replace_obj": [(0, "a man riding a horse on a beach", "a man riding a camel on a beach"),
                    (1, "a plate of food with broccoli", "a plate of food with carrots")],
    "replace_att": [(2, "a red bus parked on the street", "a blue bus parked on the street")],
    "replace_rel": [(0, "a man riding a horse on a beach", "a man walking a horse on a beach")],
    "swap_obj": [(3, "a dog chasing a cat in a yard", "a cat chasing a dog in a yard")],
    "swap_att": [(4, "a white cup on a black table", "a black cup on a white table"),
                 (5, "two people holding umbrellas", "two people holding umbrellas")],
    "add_obj": [(1, "a plate of food", "a plate of food and a fork"),
                (6, "a kitchen with a stove", "a kitchen with a stove and a dog")],
    "add_att": [(2, "a bus parked on the street", "a red bus parked on the street")],
}


def coco_name(seed: int) -> str:
    return f"{397133 + seed:012d}.jpg"


def photo(seed: int, size=(640, 480)) -> bytes:
    """A COCO-sized JPEG: coloured shapes over noise, different for each seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.normal(128, 40, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    pen = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, size[0] // 2, 2))
        w, h = (int(v) for v in rng.integers(size[1] // 8, size[1] // 2, 2))
        pen.ellipse([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def class_names(items) -> list[str]:
    """The ClassLabel's names: every caption of every subset, in an order unrelated to the rows (the mirror's are
    ``list(set(...))``), so that a class integer is never the position in ``tested_labels``."""
    captions = {text for rows in items.values() for _, c, n in rows for text in (c, n)}
    return sorted(captions, key=lambda t: hashlib.sha1(t.encode()).hexdigest())


def write_mirror(folder: Path, subset: str, rows, names: list[str], size=(640, 480)) -> Path:
    """One mirror repository as the Hub stores it: its parquet shard (2023 ``push_to_hub`` schema and metadata:
    ``image`` struct<bytes, path>, ``tested_labels`` list<string>, ``true_label`` int64 + ClassLabel names) and its
    card (``dataset_info`` with the ClassLabel names, ``configs``)."""
    images = [{"bytes": photo(seed, size), "path": coco_name(seed)} for seed, _, _ in rows]
    table = pa.table({
        "image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "tested_labels": pa.array([[c, n] for _, c, n in rows], pa.list_(pa.string())),
        "true_label": pa.array([names.index(c) for _, c, _ in rows], pa.int64()),
    })
    features = {"image": {"_type": "Image"},
                "tested_labels": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                "true_label": {"names": names, "_type": "ClassLabel"}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    digest = hashlib.sha1(repr(rows).encode() + str(folder).encode()).hexdigest()[:16]
    (folder / "data").mkdir(parents=True)
    shard = folder / "data" / f"test-00000-of-00001-{digest}.parquet"
    pq.write_table(table, shard)
    info = {"features": [{"name": "image", "dtype": "image"}, {"name": "tested_labels", "sequence": "string"},
                         {"name": "true_label", "dtype": {"class_label": {"names": {str(i): n for i, n in
                                                                                   enumerate(names)}}}}],
            "splits": [{"name": "test", "num_bytes": shard.stat().st_size, "num_examples": len(rows)}],
            "download_size": shard.stat().st_size, "dataset_size": shard.stat().st_size}
    configs = [{"config_name": "default", "data_files": [{"split": "test", "path": "data/test-*"}]}]
    header = yaml.safe_dump({"configs": configs, "dataset_info": info}, sort_keys=False, allow_unicode=True)
    (folder / "README.md").write_text(f"---\n{header}---\n# Dataset Card for \"SugarCrepe_{subset}\"\n")
    return folder


def make_mirrors(root: Path, items=ITEMS, size=(640, 480)) -> Path:
    """Local copies of the mirrors, each where `hf download --local-dir root/SugarCrepe_<subset>` puts it."""
    names = class_names(items)
    for subset, rows in items.items():
        write_mirror(root / f"SugarCrepe_{subset}", subset, rows, names, size)
    return root


def official_loop(model, processor, items=ITEMS) -> dict[str, list[tuple[float, float]]]:
    """SugarCrepe's main_eval.py, item by item: (score with the caption, score with the negative caption)."""
    scores = {}
    for subset, rows in items.items():
        scores[subset] = []
        for seed, caption, negative in rows:
            u = direct_image(model, processor, Image.open(io.BytesIO(photo(seed))))
            scores[subset].append((float(u @ direct_text(model, processor, caption)),
                                   float(u @ direct_text(model, processor, negative))))
    return scores


def encoder_for(tiny_model_and_processor) -> CLIPEncoder:
    model, processor = tiny_model_and_processor
    model.eval()
    return CLIPEncoder(model, processor, batch_size=3, progress=False)


@pytest.mark.parametrize("by", ["hub id", "folder"])
def test_all_seven_mirrors_score_as_main_eval(tmp_path, monkeypatch, tiny_model_and_processor, by):
    root = make_mirrors(tmp_path / "sugarcrepe")
    assert all(len(photo(seed)) > 30_000 for seed in (0, 1))  # COCO-sized JPEGs, not thumbnails
    for subset in ITEMS:
        serve_hub_dataset(monkeypatch, f"{PREFIX}_{subset}", root / f"SugarCrepe_{subset}")
    encoder = encoder_for(tiny_model_and_processor)
    benchmark = load_benchmark("sugarcrepe", PREFIX if by == "hub id" else root)
    assert {s: p.names is not None for s, p in benchmark.mirror.items()} == {s: True for s in NEGATIVE_KINDS}
    result = benchmark.run(encoder)

    loop = official_loop(*tiny_model_and_processor)
    expected = {s: float(np.mean([p > n for p, n in pairs])) for s, pairs in loop.items()}
    tie = loop["swap_att"][1]
    assert tie[0] == tie[1] and result.details["swap_att/positive_scores"][1] == \
        result.details["swap_att/negative_scores"][1]  # an exact tie ...
    assert result.metrics["swap_att"] <= 0.5  # ... counted wrong
    for subset, pairs in loop.items():
        np.testing.assert_allclose(result.details[f"{subset}/positive_scores"], [p for p, _ in pairs], atol=1e-5)
        np.testing.assert_allclose(result.details[f"{subset}/negative_scores"], [n for _, n in pairs], atol=1e-5)
        assert result.metrics[subset] == pytest.approx(expected[subset])
    for kind, subsets in SUGARCREPE_GROUPS.items():
        assert result.metrics[kind] == pytest.approx(np.mean([expected[s] for s in subsets]))
    assert result.metrics["overall"] == pytest.approx(np.mean([expected[s] for s in NEGATIVE_KINDS]))
    sizes = {s: len(rows) for s, rows in ITEMS.items()}
    assert result.metrics["overall_weighted"] == pytest.approx(
        sum(expected[s] * sizes[s] for s in sizes) / sum(sizes.values()))
    assert result.num_items == result.num_scored == sum(sizes.values())
    assert encoder.num_images_encoded == len({seed for rows in ITEMS.values() for seed, _, _ in rows})
    # A short mirror is never presented as the official benchmark: every subset says how it differs.
    for subset, rows in ITEMS.items():
        assert any(f"{subset}: mirror has {len(rows)} items, official release has {OFFICIAL_ITEMS[subset]}" in note
                   for note in result.notes), subset


@pytest.mark.parametrize("by", ["hub id", "folder"])
def test_one_mirror_scores_as_the_official_json_of_the_same_items(tmp_path, monkeypatch, tiny_model_and_processor,
                                                                   by):
    subset = "swap_att"
    mirror = write_mirror(tmp_path / "hf" / f"SugarCrepe_{subset}", subset, ITEMS[subset], class_names(ITEMS))
    serve_hub_dataset(monkeypatch, f"{PREFIX}_{subset}", mirror)
    official = tmp_path / "official"
    (official / "images").mkdir(parents=True)
    content = {str(2 * i): {"filename": coco_name(seed), "caption": c, "negative_caption": n}
               for i, (seed, c, n) in enumerate(ITEMS[subset])}
    (official / f"{subset}.json").write_text(json.dumps(content))
    for seed, _, _ in ITEMS[subset]:
        (official / "images" / coco_name(seed)).write_bytes(photo(seed))

    # --images (the compositional suite gives the COCO folder to sugarcrepe) is not needed by the mirror: ignored.
    options = BenchmarkOptions(images=official / "images")
    from_mirror = load_benchmark("sugarcrepe", f"{PREFIX}_{subset}" if by == "hub id" else mirror, options)
    from_json = load_benchmark("sugarcrepe", official)
    a = from_mirror.run(encoder_for(tiny_model_and_processor))
    b = from_json.run(encoder_for(tiny_model_and_processor))
    assert a.metrics == b.metrics and set(a.metrics) == {subset} and a.metrics[subset] <= 0.5  # the tie: wrong
    for name in ("positive_scores", "negative_scores"):
        np.testing.assert_allclose(a.details[f"{subset}/{name}"], b.details[f"{subset}/{name}"], atol=1e-6)
    assert a.counts() == b.counts()


def test_the_item_count_note_with_the_real_swap_obj(tmp_path, test_data, tiny_model_and_processor):
    official = {}
    for subset in NEGATIVE_KINDS:
        official[subset] = json.loads((test_data / "sugarcrepe" / f"{subset}.json").read_text())
    assert OFFICIAL_ITEMS == {s: len(v) for s, v in official.items()}  # counted in the real official files
    assert sum(OFFICIAL_ITEMS.values()) == 7511
    assert all(mirror_count_note(s, f"{PREFIX}_{s}", n) is None for s, n in OFFICIAL_ITEMS.items())

    # The mirror's swap_obj as made in August 2023: the 245 official items and key "108", dropped upstream since.
    seeds = {name: i for i, name in enumerate(sorted({v["filename"] for v in official["swap_obj"].values()}))}
    items = [(seeds[v["filename"]], v["caption"], v["negative_caption"]) for v in official["swap_obj"].values()]
    caption, negative = REMOVED_UPSTREAM["swap_obj"]
    items.insert(108, (len(seeds), caption + " ", negative))
    folder = write_mirror(tmp_path / "SugarCrepe_swap_obj", "swap_obj", items,
                          class_names({"swap_obj": items}), size=(64, 48))
    result = load_benchmark("sugarcrepe", folder).run(encoder_for(tiny_model_and_processor))
    assert result.num_items == result.num_scored == 246
    note = next(n for n in result.notes if n.startswith("sugarcrepe: swap_obj:"))
    assert "mirror has 246 items, official release has 245" in note and "'108'" in note
    assert set(result.metrics) == {"swap_obj"}  # one subset: no average that could pass for the benchmark's

    # A mirror cut short (--max_items) reports the mirror's own count, not the number scored.
    short = load_benchmark("sugarcrepe", folder, BenchmarkOptions(max_items=5)).run(
        encoder_for(tiny_model_and_processor))
    assert short.num_items == 5 and any("mirror has 246 items" in n for n in short.notes)


def test_true_label_decides_and_bad_mirrors_are_refused(tmp_path, tiny_model_and_processor):
    rows = ITEMS["add_obj"]
    names = class_names({"add_obj": rows})
    first = write_mirror(tmp_path / "a" / "SugarCrepe_add_obj", "add_obj", rows, names, size=(64, 48))
    # The same items with the caption second: true_label, not the position, says which caption is right.
    second = tmp_path / "b" / "SugarCrepe_add_obj"
    write_mirror(second, "add_obj", rows, names, size=(64, 48))
    dataset = datasets.load_dataset(str(second), split="test", cache_dir=str(tmp_path / "cache"))
    swapped = dataset.map(lambda row: {"tested_labels": row["tested_labels"][::-1]})
    shard = next((second / "data").glob("*.parquet"))
    swapped.to_parquet(shard)
    a = load_benchmark("sugarcrepe", first).run(encoder_for(tiny_model_and_processor))
    b = load_benchmark("sugarcrepe", second).run(encoder_for(tiny_model_and_processor))
    assert a.metrics == b.metrics
    np.testing.assert_allclose(a.details["add_obj/positive_scores"], b.details["add_obj/positive_scores"], atol=1e-6)

    # true_label stripped of its ClassLabel names: its integers say nothing.
    bare = tmp_path / "c" / "SugarCrepe_add_obj"
    (bare / "data").mkdir(parents=True)
    pq.write_table(pq.read_table(shard).replace_schema_metadata(None), bare / "data" / "test-00000-of-00001.parquet")
    with pytest.raises(EvaluationInputError, match="ClassLabel names.*hf download"):
        load_benchmark("sugarcrepe", bare)
    # A true_label that is neither tested label.
    wrong = tmp_path / "d" / "SugarCrepe_add_obj"
    write_mirror(wrong, "add_obj", rows, names, size=(64, 48))
    shard = next((wrong / "data").glob("*.parquet"))
    table = pq.read_table(shard)
    labels = [names.index(rows[1][1])] * len(rows)  # row 0's true_label names row 1's caption
    table = table.set_column(2, "true_label", pa.array(labels, pa.int64()))
    pq.write_table(table, shard)
    with pytest.raises(EvaluationInputError, match=r"row 0: true_label .* is neither of its tested_labels"):
        load_benchmark("sugarcrepe", wrong)
    # An undecodable image is skipped and counted, as in the JSON layout.
    broken = write_mirror(tmp_path / "e" / "SugarCrepe_add_obj", "add_obj", rows, names, size=(64, 48))
    shard = next((broken / "data").glob("*.parquet"))
    table = pq.read_table(shard)
    images = table.column("image").to_pylist()
    images[0]["bytes"] = images[0]["bytes"][:40]
    pq.write_table(table.set_column(0, "image", pa.array(images, table.schema.field("image").type)), shard)
    result = load_benchmark("sugarcrepe", broken).run(encoder_for(tiny_model_and_processor))
    assert result.counts()["subsets"] == {"add_obj": {"items": 2, "scored": 1, "skipped": 1}}
    assert result.counts()["skipped_by_reason"] == {"undecodable image": 1}
    assert result.metrics["add_obj"] == float(a.details["add_obj/positive_scores"][1] >
                                              a.details["add_obj/negative_scores"][1])
    assert any("items skipped" in n for n in result.notes)
    # A copy whose folder does not name its subset; an unknown mirror id; a Hub id that is no SugarCrepe at all.
    anonymous = write_mirror(tmp_path / "download", "add_obj", rows, names, size=(64, 48))
    with pytest.raises(EvaluationInputError, match="SugarCrepe_<subset>"):
        load_benchmark("sugarcrepe", anonymous)
    with pytest.raises(EvaluationInputError, match="HuggingFaceM4/SugarCrepe_add_att"):
        load_benchmark("sugarcrepe", f"{PREFIX}_swap_rel")
    with pytest.raises(EvaluationInputError, match=f"{PREFIX} .all seven."):
        load_benchmark("sugarcrepe", "someone/not-sugarcrepe")
    assert find_sugarcrepe_mirror(f"{PREFIX}_*") == {s: f"{PREFIX}_{s}" for s in NEGATIVE_KINDS}


def test_cli_reads_the_mirror_by_hub_id_and_under_data_root(tmp_path, monkeypatch, tiny_checkpoint, capsys):
    root = tmp_path / "benchmarks"
    make_mirrors(root / "sugarcrepe", size=(64, 48))
    (root / "val2017").mkdir()  # the COCO folder the suite passes to SugarCrepe: unused by the mirror
    for subset in ITEMS:
        serve_hub_dataset(monkeypatch, f"{PREFIX}_{subset}", root / "sugarcrepe" / f"SugarCrepe_{subset}")
    reports = {}
    for name, arguments in {
        "suite": ["--benchmark", "compositional", "--data_root", str(root)],
        "hub": ["--benchmark", "sugarcrepe", "--data", PREFIX],
    }.items():
        code = main(["evaluate", "--model", str(tiny_checkpoint), *arguments, "--output_dir", str(tmp_path / name),
                     "--no-progress"])
        assert code == 0, capsys.readouterr()
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    model = str(tiny_checkpoint)
    assert reports["suite"]["results"][model]["sugarcrepe"] == reports["hub"]["results"][model]["sugarcrepe"]
    assert "overall" in reports["hub"]["results"][model]["sugarcrepe"]
    for report in reports.values():
        assert any("swap_obj: mirror has 1 items, official release has 245" in n for n in report["notes"])
    assert "mirror has 1 items" in (tmp_path / "hub" / "report.md").read_text()
