"""The prompts of the synthesis recipe.

`NEGATIVE_CAPTION_PROMPT` is the TripletCLIP paper's instruction for negative captions, word for word; ``{}`` is
where the caption goes. `QUESTION_PROMPT` asks an LLM for yes/no questions about a negative caption for the quality
check (the paper has an LLM write five such questions and a VQA model answer them on the negative image; it does not
publish its question prompt, so this one is ours).
"""

from __future__ import annotations

#: The paper's prompt (Mistral-7B-Instruct-v0.2, one negative caption per caption), verbatim. ``{}`` is the caption.
NEGATIVE_CAPTION_PROMPT = (
    "You are given the description of an image. You should provide a mostly similar description, changing the "
    "original one slightly but introducing enough significant differences such that the two descriptions could not "
    "possibly be for the same image. Keep the description length the same. Finally, only a few things (such as "
    "counting, objects, attributes, and relationships) can be modified to change the image structure significantly. "
    "Provide just the updated description. Examples: Input: A dog to the left of the cat. Output: A dog to the right "
    "of the cat. Input: A person wearing a red helmet drives a motorbike on a dirt road. Output: A person in a blue "
    "helmet rides a motorbike on a gravel path. Now, do the same for the following captions: Input: {} Output:"
)

#: The quality-check prompt: ``{n}`` questions about ``{caption}``, one per line, each answered "yes" by an image
#: that matches.
QUESTION_PROMPT = (
    "You are given the description of an image. Write {n} short yes/no questions that check whether an image shows "
    "what the description says: its objects, their counts, attributes and relationships. Each question must be "
    "answered \"yes\" by an image that matches the description. Write one question per line and nothing else. "
    "Description: {caption} Questions:"
)


def negative_caption_prompt(caption: str, template: str = NEGATIVE_CAPTION_PROMPT) -> str:
    """The instruction for one caption: ``template`` with its single ``{}`` replaced by ``caption``."""
    if template.count("{}") != 1:
        raise ValueError("A negative-caption prompt template must contain exactly one '{}' where the caption goes.")
    return template.replace("{}", caption.strip())


def question_prompt(caption: str, n: int = 5, template: str = QUESTION_PROMPT) -> str:
    """The instruction asking for ``n`` yes/no questions about ``caption``."""
    return template.replace("{n}", str(n)).replace("{caption}", caption.strip())
