"""Named starting points: architecture presets, an offline tokenizer, and the matching processor.

Nothing here downloads anything. A preset is a `TripletCLIPConfig` recipe:

- ``"vit-b-32"``: the paper's ViT-B/32 (OpenAI CLIP ViT-B/32 shapes: 224 px, patch 32, 12-layer 768-wide vision
  tower, 12-layer 512-wide text tower, 77 positions, 512-d projection, ~151M parameters).
- ``"tiny"``: a ~2M-parameter CLIP for 64 px images, for CPU demos, the built-in world and tests.

Pretrained CLIP weights are a different starting point: `TripletCLIPModel.from_clip("openai/clip-vit-base-patch32")`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from transformers import CLIPImageProcessorPil, CLIPProcessor, CLIPTokenizer

from .configuration_tripletclip import TripletCLIPConfig
from .modeling_tripletclip import TripletCLIPModel

PRESETS: dict[str, dict[str, Any]] = {
    "vit-b-32": {
        "projection_dim": 512,
        "text_config": {
            "vocab_size": 49408,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
            "projection_dim": 512,
        },
        "vision_config": {
            "image_size": 224,
            "patch_size": 32,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "projection_dim": 512,
        },
    },
    "tiny": {
        "projection_dim": 128,
        "text_config": {
            "vocab_size": 1024,
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            "projection_dim": 128,
        },
        "vision_config": {
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "projection_dim": 128,
        },
    },
}


def preset_config(preset: str, **overrides: Any) -> TripletCLIPConfig:
    """The `TripletCLIPConfig` of a named preset. Top-level fields (e.g. ``loss_type``) are overridden directly;
    ``text_config``/``vision_config`` overrides are merged into the preset's dicts."""
    values = {key: (dict(value) if isinstance(value, dict) else value) for key, value in _preset(preset).items()}
    for key, value in overrides.items():
        if key in ("text_config", "vision_config") and isinstance(value, dict):
            values[key].update(value)
        else:
            values[key] = value
    return TripletCLIPConfig(**values)


def _preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Choose one of: {', '.join(sorted(PRESETS))}.")
    return PRESETS[name]


UNK_TOKEN = "<|unk|>"


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024, model_max_length: int = 64) -> CLIPTokenizer:
    """Train a small BPE `CLIPTokenizer` on ``corpus`` (well under a second for thousands of captions); the same
    corpus gives the same tokenizer in every process.

    For models trained from scratch on a closed vocabulary (the built-in world, tests). Characters the corpus never
    had become a dedicated ``<|unk|>`` token: never the end-of-text token, where CLIP pools the caption. Models
    meant for open text should use OpenAI CLIP's tokenizer
    (`CLIPTokenizer.from_pretrained("openai/clip-vit-base-patch32")`).
    """
    texts = Counter(corpus)  # captions repeat; the merges below weigh each text by its count
    tokenizer = CLIPTokenizer().train_new_from_iterator(iter(sorted(texts)), vocab_size=vocab_size,
                                                        new_special_tokens=[UNK_TOKEN])
    _learn_merges_deterministically(tokenizer, texts, vocab_size)
    tokenizer.backend_tokenizer.model.unk_token = UNK_TOKEN
    tokenizer.unk_token = UNK_TOKEN
    tokenizer.model_max_length = model_max_length
    return tokenizer


def _learn_merges_deterministically(tokenizer: CLIPTokenizer, texts: Counter, vocab_size: int) -> None:
    """Replace the trained BPE model's merges and ids by ones that depend on the corpus only.

    The `tokenizers` trainer breaks ties between equally frequent pairs, and numbers its tokens, in an order that
    changes from one process to the next, so two runs of the same command (or a run and its resume) would get
    different tokenizers. Here the merges are learned again with the trainer's rule (the most frequent adjacent pair,
    counted over the same pre-tokenized words with the same end-of-word suffix, until the vocabulary is full or no
    pair is left) and ties go to the lexicographically smallest pair; ids are the special tokens (as trained), the
    initial alphabet sorted, then each merge's product in merge order. Normaliser, pre-tokenizer, decoder and
    post-processor stay as trained.
    """
    import json

    from tokenizers import Tokenizer

    backend = tokenizer.backend_tokenizer
    state = json.loads(backend.to_str())
    model = state["model"]
    suffix = model.get("end_of_word_suffix") or ""
    counts: Counter = Counter()
    for text, repeats in texts.items():
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized):
            if word:
                counts[word] += repeats
    words = {tuple(word[:-1]) + (word[-1] + suffix,): count for word, count in counts.items()}
    special = [token["content"] for token in sorted(state["added_tokens"], key=lambda token: token["id"])]
    trained = ["".join(m) if isinstance(m, list) else m.replace(" ", "") for m in model["merges"]]
    alphabet = set(model["vocab"]) - set(trained) - set(special)
    alphabet |= {symbol for word in words for symbol in word}
    vocab = special + sorted(alphabet)
    known = set(vocab)
    merges: list[list[str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        first, second = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append([first, second])
        product = first + second
        if product not in known:
            vocab.append(product)
            known.add(product)
        merged = {}
        for word, count in words.items():
            out, position = [], 0
            while position < len(word):
                if position + 1 < len(word) and word[position] == first and word[position + 1] == second:
                    out.append(product)
                    position += 2
                else:
                    out.append(word[position])
                    position += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged
    model["vocab"] = {token: number for number, token in enumerate(vocab)}
    model["merges"] = merges
    for token in state["added_tokens"]:
        token["id"] = model["vocab"][token["content"]]
    backend.model = Tokenizer.from_str(json.dumps(state)).model  # the rest of the pipeline stays as trained


def build_processor(tokenizer: CLIPTokenizer, image_size: int) -> CLIPProcessor:
    """A `CLIPProcessor` for ``image_size``-pixel square inputs: resize the shortest edge, centre-crop, normalise
    with CLIP's mean and std (the PIL backend: no torchvision needed)."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def align_text_config(config: TripletCLIPConfig, tokenizer: CLIPTokenizer) -> TripletCLIPConfig:
    """Make the text tower agree with ``tokenizer``: CLIP pools at the end-of-text token, so the special token ids
    must match, the vocabulary must fit, and the tokenizer must not produce sequences longer than the positions."""
    text = config.text_config
    if len(tokenizer) > text.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the text tower's vocab_size is {text.vocab_size}: "
            f"train the tokenizer with vocab_size <= {text.vocab_size}, or raise text_config.vocab_size."
        )
    text.bos_token_id = tokenizer.bos_token_id
    text.eos_token_id = tokenizer.eos_token_id
    text.pad_token_id = tokenizer.pad_token_id
    tokenizer.model_max_length = min(tokenizer.model_max_length, text.max_position_embeddings)
    return config


def create_model_and_processor(
    preset: str = "tiny",
    corpus: Iterable[str] | None = None,
    tokenizer: CLIPTokenizer | None = None,
    **config_overrides: Any,
) -> tuple[TripletCLIPModel, CLIPProcessor]:
    """A randomly initialised `TripletCLIPModel` of a preset and its processor.

    Give either a ``tokenizer`` or a ``corpus`` of captions to train one on (vocabulary of the preset's
    ``text_config.vocab_size``). ``config_overrides`` go to :func:`preset_config` (e.g. ``loss_type="negclip"``).
    """
    if tokenizer is None:
        if corpus is None:
            raise ValueError(
                "create_model_and_processor needs a `tokenizer`, or a `corpus` of captions to train one on "
                "(e.g. the training captions). For OpenAI's vocabulary pass "
                "CLIPTokenizer.from_pretrained('openai/clip-vit-base-patch32')."
            )
        text = {**_preset(preset)["text_config"], **config_overrides.get("text_config", {})}
        tokenizer = train_tokenizer(
            corpus, vocab_size=text["vocab_size"], model_max_length=text["max_position_embeddings"]
        )
    # Set the special token ids at construction, so the config never holds ids outside its vocabulary.
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    config_overrides["text_config"] = {**config_overrides.get("text_config", {}), **special}
    config = align_text_config(preset_config(preset, **config_overrides), tokenizer)
    image_size = config.vision_config.image_size
    image_size = image_size if isinstance(image_size, int) else image_size[0]
    model = TripletCLIPModel(config)
    return model, build_processor(tokenizer, image_size)


__all__ = [
    "PRESETS",
    "preset_config",
    "train_tokenizer",
    "build_processor",
    "align_text_config",
    "create_model_and_processor",
]
