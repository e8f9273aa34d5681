"""TripletCLIP Space: does the model see the difference between a caption and its hard negative?

Give an image and a few captions that differ in one small detail; every configured model scores each caption
against the image (softmax over the captions of its similarity logits, and the raw cosine similarity), TripletCLIP
beside a baseline CLIP when both are configured. A button proposes hard negatives of the first caption with the
rule-based generator of the `tripletclip` package.

Which models (first match wins):
  1. environment variables ``TRIPLETCLIP_MODEL`` and ``BASELINE_MODEL`` (Hub ids or local folders);
  2. the JSON file named by ``TRIPLETCLIP_SPACE_CONFIG``, else ``models.json`` beside this file:
     ``[{"label": "TripletCLIP", "model": "org/name"}, {"label": "CLIP", "model": "openai/clip-vit-base-patch32"}]``
     (relative paths are relative to the JSON file);
  3. in a checkout of the repository, the default trained checkpoint ``outputs/tripletclip-world``.

Models load through transformers alone (TripletCLIP checkpoints are plain CLIP checkpoints by default;
``trust_remote_code=True`` also loads the remote-code form), so the Space does not need the `tripletclip` package: what it uses of it, the rule-based generator of hard negatives and
the image decoder, are two self-contained standard-library-and-Pillow modules that ``tripletclip push space`` stages
beside this file (``rules.py``, ``images.py``). In a checkout with the package installed they come from the package.
Run locally with ``python spaces/app.py``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

try:  # a checkout, or the tripletclip package installed
    from dataset_builders.synthesis.rules import propose_negatives
    from dataset_builders.utils.images import TOO_LARGE, decode_image, image_size
except ImportError:  # the Space as staged: the two self-contained modules beside this file
    from images import TOO_LARGE, decode_image, image_size
    from rules import propose_negatives

HERE = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = HERE.parent / "outputs" / "tripletclip-world"
EXAMPLES_DIR = HERE / "examples"

#: Input bounds, also shown in the Space card.
LIMITS = {"max_megapixels": 20, "max_upload_mb": 10, "max_captions": 8, "max_caption_chars": 200}
MAX_MODELS = 3
PROPOSALS = 3

#: (image file in examples/, a caption true of it, a hard negative of it).
EXAMPLES = [
    ("chelsea.png", "a tabby cat with green eyes", "a tabby cat with blue eyes"),
    ("horse.png", "a black horse on a white background", "a white horse on a black background"),
    ("astronaut.png", "a woman in front of an American flag", "a woman behind an American flag"),
    ("coffee.png", "a cup of coffee on a red saucer", "a plate of coffee on a red saucer"),
    ("rocket.jpg", "a rocket on a launch pad at night", "a rocket next to a launch pad at night"),
    ("world_swap_att.png",
     "on a white background, a little black diamond over a little red star; an orange heart is on the left side of the star",
     "on a white background, a little black diamond over a little orange star; a red heart is on the left side of the star"),
    ("world_replace_rel.png",
     "a yellow circle is higher than a big orange moon and also a small purple star with a small pink heart beneath the circle",
     "a yellow circle is higher than a big orange moon and also a small purple star with a small pink heart higher than the circle"),
    ("world_swap_obj.png", "a little yellow circle with a little orange heart under it on a gray background.",
     "a little yellow heart with a little orange circle under it on a gray background."),
]


class InputError(ValueError):
    """An input the Space does not accept; the message tells the user what to change."""


# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class ModelSpec:
    label: str
    source: str  # Hub id or local folder


def configured_models(environ: dict[str, str] | None = None, here: Path = HERE) -> list[ModelSpec]:
    """The models to show, from the environment, a config file, or the default trained checkpoint."""
    environ = dict(os.environ if environ is None else environ)
    from_env = [ModelSpec(label, environ[name].strip()) for name, label in
                (("TRIPLETCLIP_MODEL", "TripletCLIP"), ("BASELINE_MODEL", "CLIP baseline")) if environ.get(name, "").strip()]
    if from_env:
        return from_env
    config_file = Path(environ.get("TRIPLETCLIP_SPACE_CONFIG") or here / "models.json")
    if config_file.is_file():
        entries = json.loads(config_file.read_text(encoding="utf-8"))
        specs = []
        for entry in entries[:MAX_MODELS]:
            source = str(entry["model"])
            local = config_file.parent / source
            specs.append(ModelSpec(str(entry.get("label") or source), str(local) if local.exists() else source))
        return specs
    return [ModelSpec("TripletCLIP", str(DEFAULT_CHECKPOINT))]


class ModelCache:
    """Loads each configured model once, on first use; a model that fails to load is reported, not fatal."""

    def __init__(self):
        self._loaded: dict[str, tuple[Any, Any] | str] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec) -> tuple[Any, Any] | str:
        """``(model, processor)``, or a message saying why the model is not available."""
        with self._lock:
            if spec.source not in self._loaded:
                self._loaded[spec.source] = _load(spec)
            return self._loaded[spec.source]


def _load(spec: ModelSpec) -> tuple[Any, Any] | str:
    from transformers import AutoModel, AutoProcessor

    try:
        model = AutoModel.from_pretrained(spec.source, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(spec.source, trust_remote_code=True)
    except Exception as error:  # a broken or unreachable checkpoint must not take the Space down
        if not Path(spec.source).expanduser().exists():  # transformers decided it is neither a folder nor a Hub model
            hint = ("Train it with `accelerate launch train_accelerate.py` (the default run writes "
                    "outputs/tripletclip-world)" if Path(spec.source) == DEFAULT_CHECKPOINT else "Check the name")
            return (f"**{spec.label}**: no checkpoint at `{spec.source}` ({type(error).__name__}). {hint}, or set "
                    f"`TRIPLETCLIP_MODEL` to a Hub id or a checkpoint folder.")
        return f"**{spec.label}**: could not load `{spec.source}` ({type(error).__name__}: {error})."
    return model, processor


# ------------------------------------------------------------------------------------------------ inputs


def parse_captions(text: str | None) -> list[str]:
    """The captions, one per non-empty line (duplicates dropped), within the Space's bounds."""
    captions = list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))
    if not captions:
        raise InputError("Write at least one caption (one per line); two or more to compare them.")
    if len(captions) > LIMITS["max_captions"]:
        raise InputError(f"{len(captions)} captions is too many: at most {LIMITS['max_captions']}, one per line.")
    too_long = [c for c in captions if len(c) > LIMITS["max_caption_chars"]]
    if too_long:
        raise InputError(f"Captions are limited to {LIMITS['max_caption_chars']} characters; this one has "
                         f"{len(too_long[0])}: \"{too_long[0][:60]}...\". Shorten it.")
    return captions


def _payload_path(payload: Any) -> str | None:
    """The file path of an image input, as the UI, the API client or a direct call gives it."""
    if payload is None:
        return None
    if isinstance(payload, (str, os.PathLike)):
        return str(payload)
    if isinstance(payload, dict):
        return payload.get("path") or None
    return getattr(payload, "path", None)


def load_image(payload: Any):
    """Open an uploaded image as RGB (as a viewer shows it: EXIF rotation applied, transparency on white), refusing
    non-images and images beyond the size limits before decoding."""
    path = _payload_path(payload)
    if path is None:
        raise InputError("Upload an image, or pick one of the examples below.")
    size = os.path.getsize(path)
    if size > LIMITS["max_upload_mb"] * 1024 * 1024:
        raise InputError(f"The file is {size / 2**20:.1f} MB; upload an image of at most {LIMITS['max_upload_mb']} MB.")
    image, problem = decode_image(path, max_pixels=LIMITS["max_megapixels"] * 1_000_000)
    if problem == TOO_LARGE:
        size = image_size(path)  # None for a decompression bomb, which Pillow refuses even to describe
        what = f"{size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} megapixels)" if size else \
            "far larger than any photo"
        raise InputError(f"The image is {what}; the limit is {LIMITS['max_megapixels']} megapixels. Resize it and "
                         f"try again.")
    if image is None:
        raise InputError("That file is not an image this Space can read (PNG, JPEG, WebP, GIF or BMP). "
                         "Upload a photo or pick an example.")
    return image


# ------------------------------------------------------------------------------------------------ scoring


def score_captions(model, processor, image, captions: list[str]) -> tuple[list[float], list[float]]:
    """For one model: the probability of each caption (softmax over the captions of ``logits_per_image``) and the
    cosine similarity of each caption with the image."""
    import torch

    inputs = processor(text=captions, images=[image], return_tensors="pt", padding=True, truncation=True)
    with torch.inference_mode():
        output = model(**inputs)
    probabilities = output.logits_per_image.softmax(dim=-1)[0]
    cosine = (output.image_embeds @ output.text_embeds.t())[0]
    return probabilities.tolist(), cosine.tolist()


def score(image_payload: Any, captions_text: str, specs: list[ModelSpec], cache: ModelCache) -> dict[str, Any]:
    """Score the captions against the image with every configured model.

    Returns ``{"captions": [...], "models": {label: {"probabilities": [...], "cosine": [...]}}, "messages": [...]}``;
    raises `InputError` for an input outside the bounds.
    """
    captions = parse_captions(captions_text)
    image = load_image(image_payload)
    results, messages = {}, []
    for spec in specs:
        loaded = cache.get(spec)
        if isinstance(loaded, str):
            messages.append(loaded)
            continue
        probabilities, cosine = score_captions(*loaded, image, captions)
        results[spec.label] = {"probabilities": probabilities, "cosine": cosine}
    return {"captions": captions, "models": results, "messages": messages}


def propose(captions_text: str) -> tuple[str, str]:
    """Append hard negatives of the first caption (rule-based); returns the new caption text and a message."""
    captions = [line.strip() for line in (captions_text or "").splitlines() if line.strip()]
    if not captions:
        return captions_text or "", "Write a caption first; hard negatives are proposed for the first line."
    first = captions[0]
    if len(first) > LIMITS["max_caption_chars"]:
        return captions_text, f"The first caption is longer than {LIMITS['max_caption_chars']} characters; shorten it."
    room = LIMITS["max_captions"] - len(captions)
    if room <= 0:
        return captions_text, f"Already {len(captions)} captions (the limit); remove some to add hard negatives."
    proposals = [n for n in propose_negatives(first, min(PROPOSALS, room) + len(captions)) if n.text not in captions]
    proposals = proposals[: min(PROPOSALS, room)]
    if not proposals:
        return captions_text, (f"No rule applies to \"{first}\": the generator edits a few hundred common words "
                               f"(objects, colours, sizes, spatial relations). Write a hard negative yourself.")
    new_text = "\n".join(captions + [n.text for n in proposals])
    kinds = ", ".join(f"`{n.kind}`" for n in proposals)
    return new_text, f"Proposed {len(proposals)} hard negative(s) of the first caption ({kinds})."


# ------------------------------------------------------------------------------------------------ the app


def build_demo(specs: list[ModelSpec] | None = None, cache: ModelCache | None = None) -> gr.Blocks:
    specs = (specs if specs is not None else configured_models())[:MAX_MODELS]
    cache = cache or ModelCache()
    example_rows = [[str(EXAMPLES_DIR / name), f"{caption}\n{negative}"] for name, caption, negative in EXAMPLES
                    if (EXAMPLES_DIR / name).is_file()]

    def score_ui(image_payload, captions_text):
        try:
            result = score(image_payload, captions_text, specs, cache)
        except InputError as error:
            raise gr.Error(str(error), duration=8) from None
        labels = []
        for spec in specs:
            scores = result["models"].get(spec.label)
            labels.append(None if scores is None else dict(zip(result["captions"], scores["probabilities"])))
        rows = []
        for i, caption in enumerate(result["captions"]):
            row = [caption]
            for spec in specs:
                scores = result["models"].get(spec.label)
                row += ["–", "–"] if scores is None else [round(scores["probabilities"][i], 3),
                                                          round(scores["cosine"][i], 3)]
            rows.append(row)
        status = "\n\n".join(result["messages"]) or _verdict(result)
        return (status, *labels, rows)

    headers = ["caption"] + [f"{s.label} {kind}" for s in specs for kind in ("probability", "cosine")]
    with gr.Blocks(title="TripletCLIP: compositional probes") as demo:
        gr.Markdown(
            "# TripletCLIP: does the model see the difference?\n"
            "Give an image and captions that differ in one small detail: an object, an attribute, a relation, a word "
            "order. Each model spreads its probability over the captions; a model that understands the composition "
            "puts it on the true one. *Propose hard negatives* rewrites the first caption with rule-based edits."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=320,
                                 value=example_rows[0][0] if example_rows else None)
                captions = gr.Textbox(
                    label=f"Captions, one per line (at most {LIMITS['max_captions']})", lines=4, max_lines=10,
                    value=example_rows[0][1] if example_rows else "",
                    placeholder="a black horse on a white background\na white horse on a black background",
                )
                with gr.Row():
                    propose_button = gr.Button("Propose hard negatives")
                    score_button = gr.Button("Score", variant="primary")
                if example_rows:
                    gr.Examples(example_rows, inputs=[image, captions], label="Examples: public-domain photos and "
                                "scenes of the procedural world, each with a caption and a hard negative")
            with gr.Column(scale=1):
                status = gr.Markdown()
                label_outputs = [gr.Label(label=spec.label, num_top_classes=LIMITS["max_captions"]) for spec in specs]
                table = gr.Dataframe(headers=headers, label="Scores", interactive=False, wrap=True)
        gr.Markdown("Models: " + ", ".join(f"**{s.label}** (`{s.source}`)" for s in specs) +
                    f". Limits: images up to {LIMITS['max_megapixels']} megapixels and {LIMITS['max_upload_mb']} MB, "
                    f"up to {LIMITS['max_captions']} captions of {LIMITS['max_caption_chars']} characters.")

        outputs = [status, *label_outputs, table]
        # preprocess=False: the upload reaches `load_image` untouched, so a non-image gets a friendly message.
        score_button.click(score_ui, [image, captions], outputs, api_name="score", preprocess=False)
        propose_button.click(propose, [captions], [captions, status], api_name="propose")
        demo.load(score_ui, [image, captions], outputs, preprocess=False, api_visibility="private")
    return demo


def _verdict(result: dict[str, Any]) -> str:
    lines = []
    for label, scores in result["models"].items():
        best = max(range(len(result["captions"])), key=lambda i: scores["probabilities"][i])
        lines.append(f"**{label}** prefers *{result['captions'][best]}* ({scores['probabilities'][best]:.0%}).")
    return " ".join(lines) or "No model is available."


demo = build_demo()

if __name__ == "__main__":
    demo.launch(max_file_size=f"{LIMITS['max_upload_mb']}mb", show_error=True)
