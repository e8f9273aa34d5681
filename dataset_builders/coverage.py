"""Concept coverage: the WordNet synsets a dataset's captions and negative captions mention (the paper's analysis).

A caption's concepts are found with WordNet alone (read by nltk, see `dataset_builders.wordnet`):

1. **Tokens**: the caption lower-cased, split into runs of letters (``"A dog's red ball."`` -> ``a dog s red ball``).
2. **Units**: at each position the longest run of up to :data:`MAX_COLLOCATION` tokens that WordNet knows as one
   lemma is taken (``fire hydrant`` -> ``fire_hydrant``, ``teddy bears`` -> ``teddy_bear``, ``hot air balloon`` and
   ``hot-air balloon`` -> ``hot-air_balloon``); single tokens that are
   closed-class words (:data:`FUNCTION_WORDS`: articles, prepositions, pronouns, auxiliaries) are never concepts.
3. **Part of speech**: among the parts of speech WordNet has the unit in (after its own lemmatiser, ``morphy``), the
   one whose most frequent sense is the most frequent in WordNet's sense-tagged corpus (``cntlist``); ties go to
   noun, verb, adjective, adverb in that order. (``red`` in ``a red ball`` is an adjective, ``ball`` a noun.)
4. **Synset**: WordNet's first sense of the unit in that part of speech (its most frequent). Only the parts of speech
   asked for are counted (nouns by default, as the paper does).

A :class:`ConceptCounts` holds, for the captions and for the negative captions (and per negative kind), how often each
synset occurs; :func:`coverage_table` gives the paper's table from it: unique synsets and occurrences in each, their
intersection, and the synsets the negatives add.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: WordNet's parts of speech, by the names the command takes.
PARTS_OF_SPEECH = {"noun": "n", "verb": "v", "adjective": "a", "adverb": "r"}
#: The longest multi-word lemma looked up (``fire_hydrant``, ``hot_dog_bun``).
MAX_COLLOCATION = 3
#: Closed-class English words: never a concept on their own, whatever rare sense WordNet gives them ("a" as vitamin A,
#: "in" as inch, "it" as information technology).
FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every no another other such what which who whom whose
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs one ones
myself yourself himself herself itself ourselves themselves
and or but nor so yet if then than because while although though as
of in on at by for with without from to into onto upon over under above below behind beside besides between
among through across along around about against near off out up down within toward towards past via per
is are was were be been being am do does did doing done have has had having will would shall should can could
may might must not s t d ll m re ve
there here where when why how very too also just only all both either neither
""".split())

_TOKEN = re.compile(r"[a-z]+")


@dataclass
class ConceptCounts:
    """Synset occurrences in a dataset's captions and negative captions (a synset is named as WordNet names it,
    e.g. ``dog.n.01``).

    Attributes:
        rows: rows read.
        captions: occurrences of each synset in the captions.
        negatives: occurrences in the negative captions.
        negatives_by_kind: the same per ``negative_kind`` (rows without a kind are not in it).
        skipped: rows whose caption or negative caption is missing or empty, by which (counted, not concepts).
    """

    rows: int = 0
    captions: Counter = field(default_factory=Counter)
    negatives: Counter = field(default_factory=Counter)
    negatives_by_kind: dict[str, Counter] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)


class ConceptFinder:
    """The synsets a text mentions (see the module docstring), with a memory of the units it has looked up."""

    def __init__(self, wordnet, parts_of_speech: Sequence[str] = ("noun",)):
        unknown = [name for name in parts_of_speech if name not in PARTS_OF_SPEECH]
        if unknown:
            raise ValueError(f"Unknown part(s) of speech {unknown}; choose from {', '.join(PARTS_OF_SPEECH)}.")
        self.wordnet = wordnet
        self.wanted = frozenset(PARTS_OF_SPEECH[name] for name in parts_of_speech)
        self.synset_of = functools.lru_cache(maxsize=None)(self._synset_of)
        self.is_lemma = functools.lru_cache(maxsize=None)(self._is_lemma)

    def _is_lemma(self, unit: str) -> bool:
        return any(self.wordnet.morphy(unit, pos) for pos in PARTS_OF_SPEECH.values())

    def _synset_of(self, unit: str) -> str | None:
        best, best_count = None, -1
        for pos in PARTS_OF_SPEECH.values():  # noun, verb, adjective, adverb: the order that breaks ties
            lemma = self.wordnet.morphy(unit, pos)
            if lemma is None:
                continue
            senses = self.wordnet.synsets(lemma, pos)
            if not senses:
                continue
            count = sum(l.count() for l in senses[0].lemmas() if l.name().lower() == lemma.lower())
            if count > best_count:
                best, best_count = senses[0], count
        if best is None or best.pos().replace("s", "a") not in self.wanted:
            return None
        return best.name()

    def units(self, text: str) -> list[str]:
        """The text's lemma units: the longest WordNet collocations first, function words dropped."""
        tokens = _TOKEN.findall(text.lower())
        units, i = [], 0
        while i < len(tokens):
            for size in range(min(MAX_COLLOCATION, len(tokens) - i), 1, -1):
                unit = next((u for u in _joinings(tokens[i:i + size]) if self.is_lemma(u)), None)
                if unit is not None:
                    units.append(unit)
                    i += size
                    break
            else:
                if tokens[i] not in FUNCTION_WORDS:
                    units.append(tokens[i])
                i += 1
        return units

    def concepts(self, text: str) -> list[str]:
        """The synsets ``text`` mentions, in order, with repeats."""
        return [synset for synset in map(self.synset_of, self.units(text)) if synset is not None]


def _joinings(tokens: Sequence[str]) -> list[str]:
    """The ways WordNet may spell a run of tokens as one lemma: joined by ``_``, or by ``-`` somewhere
    (``hot air balloon`` -> ``hot-air_balloon``)."""
    spellings = [tokens[0]]
    for token in tokens[1:]:
        spellings = [f"{head}{joint}{token}" for head in spellings for joint in ("_", "-")]
    return spellings


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) and value.strip() else None


def count_concepts(rows: Iterable[dict], finder: ConceptFinder, max_rows: int | None = None,
                   progress=None) -> ConceptCounts:
    """Count the synsets of ``rows`` (dicts with ``caption``, and ``negative_caption`` / ``negative_kind`` where the
    dataset has them), reading at most ``max_rows``."""
    counts = ConceptCounts()
    for row in rows:
        if max_rows is not None and counts.rows >= max_rows:
            break
        counts.rows += 1
        if progress is not None:
            progress.update(1)
        caption = _text(row.get("caption"))
        if caption is None:
            counts.skipped["empty or missing caption"] += 1
        else:
            counts.captions.update(finder.concepts(caption))
        if "negative_caption" not in row:
            continue
        negative = _text(row.get("negative_caption"))
        if negative is None:
            counts.skipped["empty or missing negative caption"] += 1
            continue
        found = finder.concepts(negative)
        counts.negatives.update(found)
        kind = row.get("negative_kind")
        if kind:
            counts.negatives_by_kind.setdefault(kind, Counter()).update(found)
    return counts


def coverage_table(counts: ConceptCounts) -> dict[str, Any]:
    """The paper's table from the counts: for the captions and the negatives, unique synsets and occurrences; their
    intersection; what the negatives add (synsets in no caption), overall and per negative kind."""
    captions = set(counts.captions)

    def side(counter: Counter) -> dict[str, int]:
        added = set(counter) - captions
        return {"unique_synsets": len(counter), "occurrences": sum(counter.values()),
                "shared_with_captions": len(set(counter) & captions), "added_synsets": len(added),
                "added_occurrences": sum(counter[s] for s in added)}

    table = {
        "rows": counts.rows,
        "skipped": dict(counts.skipped),
        "captions": {"unique_synsets": len(captions), "occurrences": sum(counts.captions.values())},
    }
    if counts.negatives or "empty or missing negative caption" in counts.skipped:
        table["negative_captions"] = side(counts.negatives)
        table["union_unique_synsets"] = len(captions | set(counts.negatives))
        added = Counter({s: n for s, n in counts.negatives.items() if s not in captions})
        table["top_added"] = added.most_common(20)
    if counts.negatives_by_kind:
        table["by_negative_kind"] = {kind: side(counter) for kind, counter in sorted(counts.negatives_by_kind.items())}
    return table


def format_table(table: dict[str, Any], title: str) -> str:
    """The coverage table as Markdown."""
    lines = [f"### Concept coverage: {title}", "",
             f"{table['rows']:,} rows" + (", skipped: " + ", ".join(f"{n} {why}" for why, n in table["skipped"].items())
                                          if table["skipped"] else "") + ".", "",
             "| | unique synsets | synset occurrences | shared with captions | added (unique) | added (occurrences) |",
             "|---|---:|---:|---:|---:|---:|",
             f"| captions | {table['captions']['unique_synsets']:,} | {table['captions']['occurrences']:,} | | | |"]
    rows = [("negative captions", table["negative_captions"])] if "negative_captions" in table else []
    rows += [(f"negatives: {kind}", part) for kind, part in table.get("by_negative_kind", {}).items()]
    for name, part in rows:
        lines.append(f"| {name} | {part['unique_synsets']:,} | {part['occurrences']:,} | "
                     f"{part['shared_with_captions']:,} | {part['added_synsets']:,} | {part['added_occurrences']:,} |")
    if "union_unique_synsets" in table:
        lines += ["", f"Captions and negatives together: {table['union_unique_synsets']:,} unique synsets."]
    return "\n".join(lines) + "\n"


def plot_added(table: dict[str, Any], path, title: str):
    """A PNG of the most frequent synsets the negatives add (or, without negatives, says there are none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .utils import atomic

    top = table.get("top_added") or []
    figure, axis = plt.subplots(figsize=(7, 0.3 * max(len(top), 4) + 1.2))
    if top:
        names, values = zip(*reversed(top))
        axis.barh(names, values, color="#4c72b0")
        axis.set_xlabel("occurrences in the negative captions")
    else:
        axis.text(0.5, 0.5, "the negative captions add no synset", ha="center", va="center")
        axis.set_axis_off()
    axis.set_title(f"Synsets the negatives add: {title}", fontsize=10)
    figure.tight_layout()
    atomic.save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path


__all__ = ["FUNCTION_WORDS", "PARTS_OF_SPEECH", "ConceptCounts", "ConceptFinder", "count_concepts", "coverage_table",
           "format_table", "plot_added"]
