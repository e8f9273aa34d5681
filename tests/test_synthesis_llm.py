"""Negative captions with a causal LM: the paper's prompt, chat template, batching with left padding, cleaning,
validation, retries and rejection, seeding. A tiny random Llama is saved to a folder and loaded back."""

from __future__ import annotations

import pytest
from test_synthesis_tiny_models import built, single_thread  # noqa: F401  (fixture)

from dataset_builders.synthesis.llm import (
    EMPTY,
    REJECTION_REASONS,
    SAME_AS_CAPTION,
    SEVERAL_DESCRIPTIONS,
    TOO_LONG,
    TOO_SHORT,
    LanguageModel,
    NegativeCaptionWriter,
    check_causal_lm,
    clean_output,
    resolve_dtype,
    validate_negative_caption,
)
from dataset_builders.synthesis.prompts import (
    NEGATIVE_CAPTION_PROMPT,
    QUESTION_PROMPT,
    negative_caption_prompt,
    question_prompt,
)

# The TripletCLIP paper's prompt, as printed in the paper.
PAPER_PROMPT = (
    "You are given the description of an image. You should provide a mostly similar description, changing the "
    "original one slightly but introducing enough significant differences such that the two descriptions could not "
    "possibly be for the same image. Keep the description length the same. Finally, only a few things (such as "
    "counting, objects, attributes, and relationships) can be modified to change the image structure significantly. "
    "Provide just the updated description. Examples: Input: A dog to the left of the cat. Output: A dog to the right "
    "of the cat. Input: A person wearing a red helmet drives a motorbike on a dirt road. Output: A person in a blue "
    "helmet rides a motorbike on a gravel path. Now, do the same for the following captions: Input: {} Output:"
)
CAPTIONS = [
    "A dog to the left of the cat.",
    "two brown horses standing in a field under a cloudy sky",
    "a red cube",
]


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> LanguageModel:
    return LanguageModel.from_pretrained(built("causal_lm", tmp_path_factory.getbasetemp()))


def test_prompts():
    assert NEGATIVE_CAPTION_PROMPT == PAPER_PROMPT
    assert negative_caption_prompt(" A cat. ") == PAPER_PROMPT.replace("{}", "A cat.")
    assert negative_caption_prompt("A {x} cat.").endswith("Input: A {x} cat. Output:")  # braces in captions are safe
    with pytest.raises(ValueError, match="exactly one"):
        negative_caption_prompt("A cat.", "no placeholder")
    prompt = question_prompt("A red cat.", 3)
    assert "Write 3 short yes/no questions" in prompt and prompt.endswith("Description: A red cat. Questions:")
    assert "{" not in prompt and "{n}" in QUESTION_PROMPT


@pytest.mark.parametrize("raw, cleaned", [
    ("  A dog to the right of the cat.  ", "A dog to the right of the cat."),
    ("Output: A dog to the right of the cat.", "A dog to the right of the cat."),
    ("Updated description: \"A blue car.\"", "A blue car."),
    ("A blue car. Input: A red bike. Output: A green bike.", "A blue car."),
    ("\u201cA blue car.\u201d\nInput: more", "A blue car."),
    ("A blue car.\nA green car.", "A blue car.\nA green car."),
])
def test_clean_output(raw, cleaned):
    assert clean_output(raw) == cleaned


@pytest.mark.parametrize("candidate, reason", [
    ("", EMPTY),
    ("...", EMPTY),
    ("A dog to the left of the cat", SAME_AS_CAPTION),
    ("a DOG to the left of the cat!", SAME_AS_CAPTION),
    ("A dog to the right of the cat.\nA cat to the left of the dog.", SEVERAL_DESCRIPTIONS),
    ("1. A dog to the right of the cat.", SEVERAL_DESCRIPTIONS),
    ("A dog " + "and a cat " * 10, TOO_LONG),
    ("A dog.", TOO_SHORT),
    ("A dog to the right of the cat.", None),
    ("Two dogs to the right of a black cat.", None),
])
def test_validate_negative_caption(candidate, reason):
    assert validate_negative_caption(candidate, "A dog to the left of the cat.") == reason
    assert reason is None or reason in REJECTION_REASONS


def test_loads_with_chat_template_and_left_padding(lm):
    assert lm.use_chat_template
    assert lm.tokenizer.padding_side == "left" and lm.tokenizer.pad_token == lm.tokenizer.eos_token
    assert lm.format("Hello") == "<s><|user|>Hello<|end|><|assistant|>"
    # the chat text already starts with <s>: the tokenizer must not add a second one
    encoded = lm.tokenizer([lm.format("Hello")], add_special_tokens=False)["input_ids"][0]
    assert encoded.count(lm.tokenizer.bos_token_id) == 1


def test_plain_prompt_without_chat_template(tmp_path_factory):
    plain = LanguageModel.from_pretrained(built("plain_lm", tmp_path_factory.getbasetemp()))
    assert not plain.use_chat_template and plain.format("Hello") == "Hello"
    assert len(plain.complete(["Hello", "a red cube on a table"], max_new_tokens=3)) == 2


def test_batched_generation_equals_one_by_one(lm):
    # With left padding every prompt ends at the last position: a batch gives each prompt's own continuation.
    batched = lm.complete(CAPTIONS, max_new_tokens=8, batch_size=3)
    alone = [lm.complete([c], max_new_tokens=8)[0] for c in CAPTIONS]
    assert batched == alone and len(set(batched)) == 3
    # The check has teeth: with right padding the shorter prompts continue from padding and change.
    lm.tokenizer.padding_side = "right"
    try:
        assert lm.complete(CAPTIONS, max_new_tokens=8, batch_size=3) != alone
    finally:
        lm.tokenizer.padding_side = "left"


def test_sampling_is_seeded(lm):
    prompts = [negative_caption_prompt(c) for c in CAPTIONS]
    first = lm.complete(prompts, max_new_tokens=8, do_sample=True, temperature=1.5, seed=7)
    assert lm.complete(prompts, max_new_tokens=8, do_sample=True, temperature=1.5, seed=7) == first
    assert lm.complete(prompts, max_new_tokens=8, do_sample=True, temperature=1.5, seed=8) != first


def test_rejected_after_retries_never_kept(lm):
    # One new token can never be a description as long as these captions: every attempt is empty or too short.
    writer = NegativeCaptionWriter(lm, max_new_tokens=1, max_retries=2, batch_size=2)
    results = writer.generate(CAPTIONS[:2], seed=0)
    for result in results:
        assert not result.accepted and result.negative_caption is None
        assert result.reason in (EMPTY, TOO_SHORT) and result.attempts == 3 and len(result.outputs) == 3
    # retries sample, so they differ from the greedy first answer at least sometimes
    assert any(len(set(r.outputs)) > 1 for r in results)


def test_accepted_answers_are_cleaned_and_valid(lm):
    writer = NegativeCaptionWriter(lm, max_new_tokens=12, min_length_ratio=0.0, max_length_ratio=50.0,
                                   max_retries=3)
    results = writer.generate(CAPTIONS, seed=0)
    assert any(r.accepted for r in results)
    for caption, result in zip(CAPTIONS, results):
        assert 1 <= result.attempts <= 4 and len(result.outputs) == result.attempts
        if result.accepted:
            assert result.reason is None
            assert result.negative_caption == " ".join(clean_output(result.outputs[-1]).split())
            assert validate_negative_caption(result.negative_caption, caption, 0.0, 50.0) is None
        else:
            assert result.reason in REJECTION_REASONS
    assert writer.generate(CAPTIONS, seed=0) == results  # reproducible


def test_not_a_causal_lm(tmp_path_factory, tmp_path):
    root = tmp_path_factory.getbasetemp()
    with pytest.raises(ValueError, match="'clip' model.*not a causal language model"):
        check_causal_lm(built("clip", root))
    with pytest.raises(ValueError, match="no config.json"):
        check_causal_lm(built("sd", root))
    with pytest.raises(ValueError, match="no config.json"):
        LanguageModel.from_pretrained(tmp_path)


def test_gpu_only_dtype_on_cpu():
    with pytest.raises(ValueError, match="GPUs only.*float32"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="GPUs only"):
        LanguageModel.from_pretrained("/nonexistent/model", dtype="float16", device="cpu")
    assert resolve_dtype("bfloat16", "cpu") is not None and resolve_dtype(None, "cpu") is None
