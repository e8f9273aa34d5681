"""Concept coverage (``tripletclip data coverage``) on a real WordNet 3.0 database, against hand-checked counts."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import datasets
import pytest

from dataset_builders import wordnet as wordnet_module
from dataset_builders.coverage import ConceptFinder, count_concepts, coverage_table
from dataset_builders.synthesis.rules import NEGATIVE_KINDS
from dataset_builders.wordnet import WordNetMissingError, load_wordnet
from modeling_tripletclip.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
SUGARCREPE = REPO / "tests" / "data" / "sugarcrepe"


@pytest.fixture(scope="module")
def wordnet():
    return load_wordnet()  # the real database: a missing one is an error here, not a skip


HAND_CHECKED = [
    {"caption": "A dog chases a red ball near the fire hydrant.",
     "negative_caption": "A cat chases a red ball near the fire hydrant.", "negative_kind": "replace_obj"},
    {"caption": "Two teddy bears sit on a wooden bench.",
     "negative_caption": "Two teddy bears sit under a wooden table.", "negative_kind": "replace_rel"},
    {"caption": "a dog and a cat", "negative_caption": "  ", "negative_kind": "swap_obj"},
]


def test_counts_of_a_hand_checked_set(wordnet):
    # Read by hand: nouns, each WordNet's first sense; "fire hydrant" is one lemma (synset fireplug.n.01), "teddy
    # bears" lemmatises to teddy_bear (teddy.n.01); "red", "wooden", "two" are adjectives, "chases", "sit" verbs.
    finder = ConceptFinder(wordnet)
    assert finder.concepts(HAND_CHECKED[0]["caption"]) == ["dog.n.01", "ball.n.01", "fireplug.n.01"]
    assert finder.concepts(HAND_CHECKED[1]["negative_caption"]) == ["teddy.n.01", "table.n.01"]
    counts = count_concepts(HAND_CHECKED, finder)
    assert counts.captions == Counter({"dog.n.01": 2, "ball.n.01": 1, "fireplug.n.01": 1, "teddy.n.01": 1,
                                       "bench.n.01": 1, "cat.n.01": 1})
    assert counts.negatives == Counter({"cat.n.01": 1, "ball.n.01": 1, "fireplug.n.01": 1, "teddy.n.01": 1,
                                        "table.n.01": 1})
    table = coverage_table(counts)
    assert table["rows"] == 3 and table["skipped"] == {"empty or missing negative caption": 1}
    assert table["captions"] == {"unique_synsets": 6, "occurrences": 7}
    assert table["negative_captions"] == {"unique_synsets": 5, "occurrences": 5, "shared_with_captions": 4,
                                          "added_synsets": 1, "added_occurrences": 1}
    assert table["union_unique_synsets"] == 7 and table["top_added"] == [("table.n.01", 1)]
    assert table["by_negative_kind"]["replace_obj"]["added_synsets"] == 0
    assert table["by_negative_kind"]["replace_rel"] == {"unique_synsets": 2, "occurrences": 2,
                                                        "shared_with_captions": 1, "added_synsets": 1,
                                                        "added_occurrences": 1}
    # Hyphens: WordNet spells the lemma "hot-air_balloon"; a caption may write it with or without the hyphen.
    assert finder.concepts("a hot air balloon over a T-shirt") == ["hot-air_balloon.n.01", "jersey.n.03"]
    assert finder.concepts("a hot-air balloon") == ["hot-air_balloon.n.01"]
    # Verbs and adjectives on request.
    everything = ConceptFinder(wordnet, ["noun", "verb", "adjective"])
    assert everything.concepts(HAND_CHECKED[0]["caption"]) == ["dog.n.01", "chase.v.01", "red.s.01", "ball.n.01",
                                                                 "fireplug.n.01"]


def independent_counts(finder, pairs) -> tuple[Counter, Counter]:
    captions, negatives = Counter(), Counter()
    for caption, negative in pairs:
        captions.update(finder.concepts(caption))
        negatives.update(finder.concepts(negative))
    return captions, negatives


def test_the_command_on_sugarcrepes_captions(wordnet, tmp_path, capsys):
    assert cli(["data", "coverage", "--dataset", str(SUGARCREPE), "--output_dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    table = json.loads((tmp_path / "coverage.json").read_text())
    items = {kind: json.loads((SUGARCREPE / f"{kind}.json").read_text()) for kind in NEGATIVE_KINDS}
    assert table["rows"] == sum(map(len, items.values())) == 7511
    captions, negatives = independent_counts(
        ConceptFinder(wordnet), [(i["caption"], i["negative_caption"]) for part in items.values() for i in part.values()])
    assert table["captions"] == {"unique_synsets": len(captions), "occurrences": sum(captions.values())}
    assert table["negative_captions"]["added_synsets"] == len(set(negatives) - set(captions)) > 0
    assert sorted(table["by_negative_kind"]) == sorted(NEGATIVE_KINDS)
    assert "| negatives: replace_obj |" in printed and (tmp_path / "coverage.png").stat().st_size > 5000
    assert (tmp_path / "coverage.md").read_text() in printed


def test_the_command_on_a_world_and_plain_captions(wordnet, tmp_path, capsys):
    from dataset_builders.world import generate_world

    world = generate_world(tmp_path / "world", num_train=40, seed=0, num_test=4, sugarcrepe_per_kind=2,
                           num_winoground=2, num_retrieval=2, progress=False)
    assert cli(["data", "coverage", "--dataset", str(world), "--output_dir", str(tmp_path / "out"),
                "--max_rows", "30"]) == 0
    table = json.loads((tmp_path / "out" / "coverage.json").read_text())
    rows = datasets.load_dataset(str(world / "train"), split="train").select(range(30))
    captions, negatives = independent_counts(ConceptFinder(wordnet), zip(rows["caption"], rows["negative_caption"]))
    assert table["rows"] == 30
    assert table["captions"]["occurrences"] == sum(captions.values()) > 30
    assert table["negative_captions"]["unique_synsets"] == len(negatives)
    assert set(table["by_negative_kind"]) == set(rows["negative_kind"])

    # A plain caption file: captions only, no negative rows in the table.
    plain = tmp_path / "captions.jsonl"
    plain.write_text("\n".join(json.dumps({"caption": c}) for c in ["a dog on a bench", "a cat", ""]) + "\n")
    assert cli(["data", "coverage", "--dataset", str(plain), "--output_dir", str(tmp_path / "plain")]) == 0
    table = json.loads((tmp_path / "plain" / "coverage.json").read_text())
    assert table["captions"] == {"unique_synsets": 3, "occurrences": 3} and "negative_captions" not in table
    assert table["skipped"] == {"empty or missing caption": 1}
    capsys.readouterr()


def test_bad_options_are_refused(tmp_path, capsys):
    assert cli(["data", "coverage", "--dataset", str(SUGARCREPE), "--parts_of_speech", "pronoun"]) == 2
    assert "choose from noun, verb, adjective, adverb" in capsys.readouterr().err
    assert cli(["data", "coverage", "--dataset", str(SUGARCREPE), "--max_rows", "0"]) == 2
    assert "--max_rows must be at least 1" in capsys.readouterr().err


def test_a_dataset_without_captions_is_refused_before_wordnet_loads(tmp_path, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"label": 1}\n')
    assert cli(["data", "coverage", "--dataset", str(path), "--output_dir", str(tmp_path)]) == 2
    assert "has no 'caption' column (it has label)" in capsys.readouterr().err


@pytest.fixture
def no_wordnet(tmp_path, monkeypatch):
    """No WordNet anywhere: nltk's data path and the system folders are empty, the package cache is fresh."""
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    monkeypatch.setattr(wordnet_module, "SYSTEM_DATABASES", ())
    monkeypatch.setenv("TRIPLETCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WNHOME", raising=False)
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def database() -> Path:
    """The machine's WordNet 3.0 database folder (set up by the README's test command)."""
    found = [folder for folder in wordnet_module.database_folders() if wordnet_module.is_database(folder)]
    assert found, "the tests need a WordNet 3.0 database (README: apt-get install wordnet-base wordnet-sense-index)"
    return found[0]


def test_missing_wordnet_says_how_to_get_it(no_wordnet):
    with pytest.raises(WordNetMissingError, match="nltk.downloader wordnet.*apt-get install wordnet-base"):
        load_wordnet.__wrapped__()


def test_a_database_without_the_sense_index_is_named(database, no_wordnet, monkeypatch):
    partial = no_wordnet / "dict"
    partial.mkdir()
    for name in wordnet_module.DATABASE_FILES:
        if name != "index.sense":
            (partial / name).symlink_to(database / name)
    monkeypatch.setenv("WNSEARCHDIR", str(partial))
    with pytest.raises(WordNetMissingError, match="lacks index.sense.*apt-get install wordnet-sense-index"):
        load_wordnet.__wrapped__()


def test_a_database_folder_is_installed_into_nltks_data_with_lexnames(database, no_wordnet, monkeypatch):
    copy = no_wordnet / "dict"
    shutil.copytree(database, copy)
    monkeypatch.setenv("WNSEARCHDIR", str(copy))
    reader = load_wordnet.__wrapped__()
    installed = no_wordnet / "cache" / "nltk_data" / "corpora" / "wordnet"
    lexnames = (installed / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[5] == "05\tnoun.animal\t1"
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    assert reader.synset("run.v.01").lexname() == "verb.motion"
    assert reader.get_version() == "3.0"
