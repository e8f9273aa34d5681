"""The procedural world: layout, determinism, held-out compositions, negatives of every kind, rendering."""

import json
import random
from collections import Counter

import numpy as np
import pytest

import datasets
from dataset_builders import NotTripletDataError, load_tripletdata, schema
from dataset_builders.sources import load_hub_dataset
from dataset_builders.synthesis.rules import NEGATIVE_KINDS
from dataset_builders.world import (
    Scene,
    World,
    WorldConfig,
    caption_true_of,
    describe,
    generate_world,
    held_out_combinations,
    load_manifest,
    make_negative,
    sample_phrasing,
    sample_scene,
    world_triplet_features,
)
from dataset_builders.world import vocabulary as V

SMALL = dict(num_test=40, sugarcrepe_per_kind=12, num_winoground=21, num_retrieval=10)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "world"
    generate_world(out, num_train=150, seed=3, progress=False, **SMALL)
    return out


@pytest.fixture(scope="module")
def train_rows(world_dir):
    return list(load_tripletdata(world_dir / "train"))


def _scenes(row):
    return Scene.from_json(row["scene"]), Scene.from_json(row["negative_scene"])


def test_layout_of_a_generated_world(world_dir):
    train = load_tripletdata(world_dir / "train")
    assert train.features == world_triplet_features() and train.num_rows == 150
    test = load_tripletdata(world_dir / "test", split="test")
    assert test.num_rows == 40
    wino = datasets.load_dataset(str(world_dir / "winoground"), split="test")
    assert wino.features == schema.winoground_features() and wino.num_rows == 21
    assert wino["tag"] == [NEGATIVE_KINDS[i % 7] for i in range(21)]
    for row in wino:
        assert row["caption_0"] != row["caption_1"]
        assert not np.array_equal(np.asarray(row["image_0"]), np.asarray(row["image_1"]))
    retrieval = load_hub_dataset(world_dir / "retrieval", schema.RETRIEVAL_COLUMNS, split="test")
    assert retrieval.num_rows == 10
    for row in retrieval:
        assert len(row["captions"]) == 5 == len(set(row["captions"]))
        assert row["image"].size == (64, 64)
    with pytest.raises(NotTripletDataError, match="generated world.*train"):
        load_tripletdata(world_dir)
    manifest = load_manifest(world_dir)
    assert manifest["config"]["num_train"] == 150 and manifest["timings"]["train"]["rows_per_second"] > 0
    assert manifest["sugarcrepe"] == {kind: 12 for kind in NEGATIVE_KINDS}


def test_same_seed_same_world_other_seed_other_world(tmp_path, world_dir):
    small = dict(num_train=20, num_test=5, sugarcrepe_per_kind=2, num_winoground=7, num_retrieval=3)
    a = generate_world(tmp_path / "a", seed=3, progress=False, **small)
    b = generate_world(tmp_path / "b", seed=4, progress=False, **small)
    first = load_tripletdata(world_dir / "train").select(range(20))
    again = load_tripletdata(a / "train")
    other = load_tripletdata(b / "train")
    assert again["caption"] == first["caption"] and again["negative_caption"] == first["negative_caption"]
    for x, y in zip(again, first):
        np.testing.assert_array_equal(np.asarray(x["image"]), np.asarray(y["image"]))
        np.testing.assert_array_equal(np.asarray(x["negative_image"]), np.asarray(y["negative_image"]))
    assert sum(x != y for x, y in zip(other["caption"], first["caption"])) >= 18
    assert held_out_combinations(3) != held_out_combinations(4)


def test_validation_world_shares_the_rules_and_training_part_but_no_held_out_scene(tmp_path, world_dir):
    """A validation world of the same seed: the same held-out combinations and training triplets, but benchmark
    scenes of its own (none of the test world's captions), still showing held-out combinations only."""
    import json

    validation = generate_world(tmp_path / "v", num_train=20, seed=3, progress=False, benchmark_split="validation",
                                **SMALL)
    test_manifest = json.loads((world_dir / "world.json").read_text())
    manifest = json.loads((validation / "world.json").read_text())
    assert manifest["held_out"] == test_manifest["held_out"] and manifest["config"]["benchmark_split"] == "validation"
    assert load_tripletdata(validation / "train")["caption"] == load_tripletdata(world_dir / "train")["caption"][:20]
    for part, column in (("test", "caption"), ("winoground", "caption_0"), ("retrieval", "captions")):
        a = load_part(world_dir / part)[column]
        b = load_part(validation / part)[column]
        assert len(b) == len(a) and not {str(x) for x in a} & {str(x) for x in b}, part
    for kind in ("replace_obj", "swap_att", "add_att"):
        a = {item["caption"] for item in json.loads((world_dir / "sugarcrepe" / f"{kind}.json").read_text()).values()}
        b = {item["caption"] for item in json.loads((validation / "sugarcrepe" / f"{kind}.json").read_text()).values()}
        assert len(b) == SMALL["sugarcrepe_per_kind"] and not a & b, kind
    held = {tuple(pair) for pair in manifest["held_out"]}
    for row in load_tripletdata(validation / "test", split="test"):
        scene = Scene.from_json(row["scene"])
        assert any((o.colour, o.shape) in held for o in scene.objects)
    # Only a validation world may go without a training part.
    empty = generate_world(tmp_path / "e", num_train=0, seed=3, progress=False, benchmark_split="validation",
                           **SMALL)
    assert json.loads((empty / "world.json").read_text())["timings"]["train"]["rows"] == 0
    assert len(load_part(empty / "winoground")) == SMALL["num_winoground"]
    with pytest.raises(ValueError, match="benchmark_split must be one of test, validation"):
        generate_world(tmp_path / "x", num_train=1, seed=3, progress=False, benchmark_split="dev")


def load_part(path):
    import datasets

    return datasets.load_dataset(str(path), split="test")


def test_held_out_combinations_never_reach_training(world_dir, train_rows):
    held = {tuple(pair) for pair in load_manifest(world_dir)["held_out"]}
    assert held == set(held_out_combinations(3))
    # Every shape loses exactly two colours, every colour stays in training with at least 7 of the 9 shapes.
    assert Counter(shape for _, shape in held) == {shape: 2 for shape in V.SHAPES}
    assert max(Counter(colour for colour, _ in held).values()) <= 2

    for row in train_rows:
        scene, negative = _scenes(row)
        shown = {(o.colour, o.shape) for o in scene.objects + negative.objects}
        assert not shown & held, (row["id"], shown & held)
        for caption in (row["caption"], row["negative_caption"]):  # the words too, not only the scene records
            for colour, shape in held:
                for word in V.SHAPE_WORDS[shape]:
                    assert f"{colour} {word}" not in caption
    for row in load_tripletdata(world_dir / "test", split="test"):
        scene, _ = _scenes(row)
        assert {(o.colour, o.shape) for o in scene.objects} & held


def _rel_ok(relation, subject, reference):
    """An independent reading of the relation words: clearly further along the axis than across it."""
    dx, dy = subject.x - reference.x, subject.y - reference.y
    return {"left": dx < 0 and abs(dy) < abs(dx), "right": dx > 0 and abs(dy) < abs(dx),
            "above": dy < 0 and abs(dx) < abs(dy), "below": dy > 0 and abs(dx) < abs(dy)}[relation]


def test_every_negative_is_the_edit_its_kind_names(train_rows):
    kinds = Counter(row["negative_kind"] for row in train_rows)
    assert set(kinds) == set(NEGATIVE_KINDS)
    moved = untouched = 0
    for row in train_rows:
        scene, negative = _scenes(row)
        kind = row["negative_kind"]
        assert row["caption"] != row["negative_caption"]
        for s in (scene, negative):
            for rel in s.relations:
                assert _rel_ok(rel.relation, s.objects[rel.subject], s.objects[rel.reference])
        attrs = lambda s: [(o.shape, o.colour, o.size) for o in s.objects]  # noqa: E731
        before, after = attrs(scene), attrs(negative)
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        if kind == "add_obj":
            assert len(after) == len(before) + 1 and changed == []
            new_shape = negative.objects[-1].shape
            assert not any(w in row["caption"] for w in V.SHAPE_WORDS[new_shape])
            assert any(w in row["negative_caption"] for w in V.SHAPE_WORDS[new_shape])
        else:
            assert len(after) == len(before)
        if kind == "replace_rel":
            assert changed == []
            assert sum(a.relation != b.relation for a, b in zip(scene.relations, negative.relations)) == 1
        elif kind == "replace_obj":
            assert len(changed) == 1 and before[changed[0]][1:] == after[changed[0]][1:]
        elif kind in ("replace_att", "add_att"):
            (i,) = changed
            assert before[i][0] == after[i][0] and sum(x != y for x, y in zip(before[i], after[i])) == 1
            if kind == "add_att":
                assert len(row["negative_caption"].split()) == len(row["caption"].split()) + 1
        elif kind == "swap_obj":
            i, j = changed
            assert (after[i][0], after[j][0]) == (before[j][0], before[i][0])
            assert (after[i][1:], after[j][1:]) == (before[i][1:], before[j][1:])
        elif kind == "swap_att":
            i, j = changed
            assert after[i][0] == before[i][0] and after[j][0] == before[j][0]
            assert Counter(x for o in (after[i], after[j]) for x in o[1:]) == Counter(
                x for o in (before[i], before[j]) for x in o[1:])
        # Objects untouched by the edit stay where they were (the negative image is a minimal change); a replaced
        # relation moves its subject, and may move objects placed relative to it.
        subjects = {a.subject for a, b in zip(scene.relations, negative.relations) if a != b}
        for k in range(len(before)):
            if k not in changed and k not in subjects:
                untouched += 1
                moved += (scene.objects[k].x, scene.objects[k].y) != (negative.objects[k].x, negative.objects[k].y)
    assert moved / untouched < 0.15, (moved, untouched)


def test_negative_captions_are_false_of_the_image_and_true_of_the_negative_image():
    world = World(WorldConfig(seed=1))
    for index in range(150):
        rng = world.rng("train", index)
        scene = sample_scene(rng, world.seen)
        phrasing = sample_phrasing(rng)
        assert caption_true_of(scene, phrasing, scene)
        for kind in NEGATIVE_KINDS:
            result = make_negative(scene, phrasing, kind, random.Random(index), world.seen)
            if result is None:
                continue
            negative, negative_phrasing = result
            assert caption_true_of(negative, negative_phrasing, negative)
            assert not caption_true_of(negative, negative_phrasing, scene), (kind, describe(scene, phrasing))
            assert describe(negative, negative_phrasing) != describe(scene, phrasing)


def test_pixels_show_the_scene(train_rows):
    checked = 0
    for row in train_rows[:40]:
        for image, scene in zip((row["image"], row["negative_image"]), _scenes(row)):
            pixels = np.asarray(image.convert("RGB")).astype(int)
            size = pixels.shape[0]
            for obj in scene.objects:
                if obj.shape in ("ring", "moon"):  # hollow at the centre
                    continue
                centre = pixels[int(obj.y * size), int(obj.x * size)]
                expected = np.array(V.COLOURS[obj.colour])
                assert np.abs(centre - expected).max() <= 30, (row["id"], obj, centre)
                checked += 1
            corner = pixels[1, 1]  # objects keep clear of the border: background there
            assert np.abs(corner - np.array(V.BACKGROUNDS[scene.background])).max() <= 30
    assert checked > 60


def test_random_pairs_rarely_differ_in_one_detail(train_rows):
    """The open-domain-like regime: in-batch pairs are easy negatives; hard ones only come from the edits."""
    scenes = [_scenes(row)[0] for row in train_rows]
    near = total = 0
    for i in range(len(scenes)):
        for j in range(i + 1, len(scenes)):
            a, b = scenes[i], scenes[j]
            total += 1
            if len(a.objects) != len(b.objects) or {o.shape for o in a.objects} != {o.shape for o in b.objects}:
                continue
            by_shape = {o.shape: o for o in b.objects}
            differences = sum((o.colour != by_shape[o.shape].colour) + (o.size != by_shape[o.shape].size)
                              for o in a.objects)
            near += differences <= 1
    assert near / total < 0.01
    assert len({row["caption"] for row in train_rows}) == len(train_rows)


def test_sugarcrepe_files_load_with_the_same_code_as_the_real_ones(world_dir, test_data, tmp_path):
    from modeling_tripletclip.evaluation.tasks.sugarcrepe import load_sugarcrepe

    ours = load_sugarcrepe(world_dir / "sugarcrepe")
    assert {k: len(v) for k, v in ours.items()} == {kind: 12 for kind in NEGATIVE_KINDS}
    images = {item.image_path for items in ours.values() for item in items}
    assert all(path.is_file() for path in images) and len(images) < 7 * 12  # images serve several subsets

    real_dir = test_data / "sugarcrepe"
    stand_ins = tmp_path / "coco"
    stand_ins.mkdir()
    for path in real_dir.glob("*.json"):
        for item in json.loads(path.read_text()).values():
            (stand_ins / item["filename"]).touch()
    real = load_sugarcrepe(real_dir, images=stand_ins)
    assert sum(len(v) for v in real.values()) == 7511 and set(real) == set(ours)

    # The raw files have one shape: {str key: {"filename", "caption", "negative_caption"}} with string values.
    for folder in (world_dir / "sugarcrepe", real_dir):
        for kind in NEGATIVE_KINDS:
            data = json.loads((folder / f"{kind}.json").read_text())
            assert all(isinstance(k, str) for k in data)
            assert all(set(v) == {"filename", "caption", "negative_caption"} for v in data.values())
            assert all(isinstance(x, str) for v in data.values() for x in v.values())


def test_an_existing_world_is_reused_and_a_different_one_is_not_overwritten(tmp_path):
    small = dict(num_train=10, num_test=2, sugarcrepe_per_kind=1, num_winoground=7, num_retrieval=2)
    out = generate_world(tmp_path / "w", seed=0, progress=False, **small)
    stamp = (out / "train" / "data" / "train-00000-of-00001.parquet").stat().st_mtime_ns
    generate_world(out, seed=0, progress=False, **small)
    assert (out / "train" / "data" / "train-00000-of-00001.parquet").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="different configuration.*overwrite"):
        generate_world(out, seed=1, progress=False, **small)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty.*overwrite"):
        generate_world(tmp_path / "busy", progress=False, **small)
    with pytest.raises(ValueError, match="image_size must be at least 16"):
        generate_world(tmp_path / "tiny", image_size=8, progress=False, **small)
