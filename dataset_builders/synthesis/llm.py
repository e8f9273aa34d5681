"""Negative captions from a causal language model, through transformers.

Any causal LM works, from the Hub or a local folder; the paper used ``mistralai/Mistral-7B-Instruct-v0.2`` with the
prompt in :mod:`.prompts`. When the tokenizer has a chat template the prompt is sent as one user turn through it,
otherwise as plain text. Prompts are generated in batches with left padding (decoder-only models continue from the
last position, so padding must sit on the left).

Every answer is cleaned (a leading "Output:" label, the model continuing the few-shot pattern with a new "Input:",
surrounding quotes) and validated: an answer that is empty, equal to the caption, far longer or shorter than it, or
more than one description is retried with sampling, up to ``max_retries`` times, and then marked rejected with its
reason. A rejected answer is never used as a negative caption.

Reproducibility: each batch is generated under its own seed, derived from the caller's seed, so the same captions in
the same batches give the same negative captions. (Greedy decoding, the default, does not depend on the seed.)

Example:
    >>> lm = LanguageModel.from_pretrained("mistralai/Mistral-7B-Instruct-v0.2", dtype="bfloat16")  # doctest: +SKIP
    >>> writer = NegativeCaptionWriter(lm)  # doctest: +SKIP
    >>> writer.generate(["A dog to the left of a cat."], seed=0)[0].negative_caption  # doctest: +SKIP
    'A dog to the right of a cat.'
"""

from __future__ import annotations

import atexit
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.devices import resolve_device, resolve_dtype
from .prompts import NEGATIVE_CAPTION_PROMPT, negative_caption_prompt

logger = logging.getLogger(__name__)

DEFAULT_LLM = "mistralai/Mistral-7B-Instruct-v0.2"
#: How the LLM runs: in the task's process (transformers), behind a server datatrove starts on the task's GPUs
#: (vllm, sglang), or behind any OpenAI-compatible server (endpoint).
LLM_SERVERS = ("transformers", "vllm", "sglang", "endpoint")

# Reasons an answer is rejected.
EMPTY = "empty"
SAME_AS_CAPTION = "same_as_caption"
TOO_LONG = "too_long"
TOO_SHORT = "too_short"
SEVERAL_DESCRIPTIONS = "several_descriptions"
REJECTION_REASONS = (EMPTY, SAME_AS_CAPTION, TOO_LONG, TOO_SHORT, SEVERAL_DESCRIPTIONS)


# --------------------------------------------------------------------------------------------------------------------
# Loading and checking a causal LM
# --------------------------------------------------------------------------------------------------------------------


def check_causal_lm(name_or_path: str | Path) -> None:
    """Raise a clear `ValueError` when ``name_or_path`` is not a causal language model, before loading weights."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(name_or_path).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise ValueError(
            f"{str(name_or_path)!r} is not a causal language model folder (it has no config.json). Give a folder "
            f"saved with `model.save_pretrained(...)` and `tokenizer.save_pretrained(...)`, or a Hub id such as "
            f"{DEFAULT_LLM!r}."
        )
    try:
        config = AutoConfig.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not read a model configuration from {str(name_or_path)!r}: {error}. Give a local folder or a Hub "
            f"id of a causal language model such as {DEFAULT_LLM!r}."
        ) from error
    architectures = config.architectures or []
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not any(
        a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures
    ):
        raise ValueError(
            f"{str(name_or_path)!r} is a {config.model_type!r} model ({', '.join(architectures) or 'no architecture'}),"
            f" not a causal language model: negative captions need a text-generation model such as {DEFAULT_LLM!r}."
        )


@dataclass
class LanguageModel:
    """A causal LM and its tokenizer, ready for batched prompting.

    Args:
        model: a transformers causal LM (``AutoModelForCausalLM``).
        tokenizer: its tokenizer; it is switched to left padding, and given its EOS token as padding if it has none.
        use_chat_template: send prompts as a user turn through the tokenizer's chat template; None means "when the
            tokenizer has one".
    """

    model: Any
    tokenizer: Any
    use_chat_template: bool | None = None

    def __post_init__(self):
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError("The tokenizer has neither a padding nor an end-of-sequence token; set pad_token.")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.use_chat_template is None:
            self.use_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_LLM, dtype: str | None = None,
                        device: str | None = None, use_chat_template: bool | None = None,
                        **kwargs: Any) -> "LanguageModel":
        """Load a causal LM and its tokenizer (safetensors weights) from the Hub or a folder.

        Args:
            name_or_path: Hub id or folder (default: the paper's Mistral-7B-Instruct-v0.2).
            dtype: ``float32``, ``bfloat16``, ``float16`` (GPU only) or None/``auto`` for the checkpoint's own.
            device: ``cuda``, ``cuda:1``, ``cpu``, ...; None picks a GPU when there is one.
            **kwargs: passed to ``AutoModelForCausalLM.from_pretrained``.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        check_causal_lm(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        model_kwargs = {"use_safetensors": True, **kwargs}
        if torch_dtype is not None:
            model_kwargs["dtype"] = torch_dtype
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **model_kwargs).to(device).eval()
        return cls(model, tokenizer, use_chat_template=use_chat_template)

    @property
    def device(self):
        return self.model.device

    def format(self, prompt: str) -> str:
        """The text the model sees for one instruction (through the chat template when used)."""
        if self.use_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 96, do_sample: bool = False,
                 temperature: float = 0.7, top_p: float = 0.9, batch_size: int = 16, seed: int = 0) -> list[str]:
        """The model's continuation of each instruction (new tokens only, special tokens removed).

        Prompts are formatted with :meth:`format`, tokenised in batches of ``batch_size`` with left padding and
        generated together; batch ``b`` runs under the torch seed ``seed + b``.
        """
        import torch

        texts = [self.format(p) for p in prompts]
        outputs: list[str] = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            encoded = self.tokenizer(
                batch, return_tensors="pt", padding=True, add_special_tokens=not self.use_chat_template
            ).to(self.device)
            generation: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                                          "pad_token_id": self.tokenizer.pad_token_id}
            if do_sample:
                generation.update(temperature=temperature, top_p=top_p)
            else:
                generation.update(temperature=None, top_p=None, top_k=None)
            torch.manual_seed(seed + start // batch_size)
            with torch.inference_mode():
                generated = self.model.generate(**encoded, **generation)
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
            outputs.extend(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        return outputs


class ServedLanguageModel:
    """A causal LM behind an OpenAI-compatible server, with `LanguageModel.complete`'s interface: the same prompts,
    cleaning, validation and retries (`NegativeCaptionWriter`) whichever way the model runs.

    The server is datatrove's (`datatrove.pipeline.inference.servers`): `VLLMServer` / `SGLangServer` start vLLM or
    SGLang on this task's GPUs (``tp``, ``dp``) and stop it with the process; `EndpointServer` talks to a running
    server (vLLM, SGLang, TGI, ``transformers serve``). Prompts go to ``/v1/chat/completions`` as one user turn (the
    server applies the model's chat template), ``max_concurrent`` requests at a time; request ``i`` of a call carries
    the seed ``seed + i``, and greedy decoding is ``temperature`` 0. What a server guarantees for equal seeds is its
    own: a GPU engine that batches requests together may return other tokens for the same seed.
    """

    def __init__(self, server_type: str, model: str, *, endpoint: str | None = None, api_key: str | None = None,
                 tp: int = 1, dp: int = 1, max_concurrent: int = 64, rank: int = 0, timeout: float = 600.0):
        import asyncio
        import threading

        from datatrove.pipeline.inference.run_inference import InferenceConfig

        self.model, self.max_concurrent, self.timeout = model, max_concurrent, timeout
        base = endpoint.rstrip("/").removesuffix("/v1") if endpoint else None
        self.config = InferenceConfig(server_type=server_type, model_name_or_path=model, endpoint_url=base,
                                      api_key=api_key, tp=tp, dp=dp, use_chat=True, request_timeout=timeout,
                                      max_concurrent_generations=max_concurrent)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: Any = None
        self._server: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, args=(rank,), daemon=True, name="llm-server")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        atexit.register(self.close)  # a server datatrove started stops with this process

    def _serve(self, rank: int) -> None:
        import asyncio

        from datatrove.pipeline.inference.run_inference import EndpointServer, SGLangServer, VLLMServer

        server_class = {"vllm": VLLMServer, "sglang": SGLangServer, "endpoint": EndpointServer}[
            self.config.server_type]

        async def hold() -> None:
            self._stop = asyncio.Event()
            try:
                async with server_class(self.config, rank) as server:
                    self._server = server
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as error:  # noqa: BLE001 - reported to the caller's thread
                self._error = error
                self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(hold())

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 96, do_sample: bool = False,
                 temperature: float = 0.7, top_p: float = 0.9, batch_size: int = 16, seed: int = 0) -> list[str]:
        """The server's answer to each instruction (``batch_size`` is the server's business and is ignored)."""
        import asyncio

        async def one(semaphore, index: int, prompt: str) -> str:
            payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": max_new_tokens, "temperature": temperature if do_sample else 0.0,
                       "top_p": top_p if do_sample else 1.0, "seed": seed + index}
            async with semaphore:
                response = await self._server.make_request(payload)
            return response["choices"][0]["message"].get("content") or ""

        async def every() -> list[str]:
            semaphore = asyncio.Semaphore(self.max_concurrent)
            return list(await asyncio.gather(*(one(semaphore, i, p) for i, p in enumerate(prompts))))

        if self._error is not None:
            raise self._error
        return asyncio.run_coroutine_threadsafe(every(), self._loop).result(self.timeout)

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)


def check_endpoint(endpoint: str, model: str, api_key: str | None = None, timeout: float = 10.0) -> None:
    """Raise a clear `ValueError` unless the OpenAI-compatible server at ``endpoint`` answers ``GET /v1/models``."""
    import httpx

    url = endpoint.rstrip("/").removesuffix("/v1") + "/v1/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        raise ValueError(f"The LLM endpoint {endpoint} does not answer ({error}). Start the server (e.g. `vllm serve "
                         f"{model}` or `transformers serve`) or fix --llm_endpoint.") from error
    if response.status_code != 200:
        raise ValueError(f"The LLM endpoint {endpoint} answered GET /v1/models with HTTP {response.status_code}; "
                         f"check --llm_endpoint and --llm_api_key.")


def language_model(config: Any, device: str, rank: int = 0) -> "LanguageModel | ServedLanguageModel":
    """The LLM of a synthesis run (`SynthesisConfig`): in this process, or behind a server."""
    if config.llm_server == "transformers":
        return LanguageModel.from_pretrained(config.llm, dtype=config.dtype, device=device)
    return ServedLanguageModel(config.llm_server, config.llm, endpoint=config.llm_endpoint,
                               api_key=config.llm_api_key, tp=config.tp, dp=config.dp,
                               max_concurrent=config.max_concurrent_requests, rank=rank)


# --------------------------------------------------------------------------------------------------------------------
# Cleaning and validating answers
# --------------------------------------------------------------------------------------------------------------------

_LABEL = re.compile(
    r"^\s*(?:output|updated description|new description|modified description|negative caption|description|answer)"
    r"\s*:\s*", re.IGNORECASE)
_CONTINUATION = re.compile(r"\b(?:input|output)\s*:", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
_QUOTES = ('"', "'", "\u201c\u201d", "\u2018\u2019", "`")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+(?:[-']\w+)*", text.lower())


def clean_output(text: str) -> str:
    """Strip what surrounds the description in a model's answer.

    Removes a leading label ("Output:", "Updated description:", ...), everything from a new "Input:"/"Output:" on
    (the model continuing the prompt's example pattern), surrounding whitespace and quotes. Line breaks inside the
    answer are kept, so that :func:`validate_negative_caption` can see several descriptions.
    """
    text = _LABEL.sub("", text.strip())
    match = _CONTINUATION.search(text)
    if match:
        text = text[: match.start()]
    text = text.strip()
    for quote in _QUOTES:
        opening, closing = (quote[0], quote[-1])
        if len(text) >= 2 and text[0] == opening and text[-1] == closing:
            text = text[1:-1].strip()
    return text


def validate_negative_caption(candidate: str, caption: str, min_length_ratio: float = 0.5,
                              max_length_ratio: float = 2.0) -> str | None:
    """Why ``candidate`` (already cleaned) is not an acceptable negative caption of ``caption``, or None if it is.

    Returns one of `REJECTION_REASONS`:
    ``empty``; ``several_descriptions`` (more than one non-empty line, or a list); ``same_as_caption`` (equal up to
    case, spacing and punctuation); ``too_long`` (more than ``max_length_ratio`` times the caption's words, plus two);
    ``too_short`` (fewer than ``min_length_ratio`` times its words).
    """
    words = _words(candidate)
    if not words:
        return EMPTY
    lines = [line for line in candidate.splitlines() if line.strip()]
    if len(lines) > 1 or _LIST_ITEM.match(candidate):
        return SEVERAL_DESCRIPTIONS
    reference = _words(caption)
    if words == reference:
        return SAME_AS_CAPTION
    if len(words) > math.ceil(max_length_ratio * len(reference)) + 2:
        return TOO_LONG
    if len(words) < math.floor(min_length_ratio * len(reference)):
        return TOO_SHORT
    return None


# --------------------------------------------------------------------------------------------------------------------
# Negative captions
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class NegativeCaptionResult:
    """The outcome for one caption.

    Attributes:
        negative_caption: the accepted negative caption, or None when rejected.
        reason: None when accepted, else why the last attempt was rejected (one of `REJECTION_REASONS`).
        attempts: how many generations were tried.
        outputs: the raw answer of every attempt, for inspection.
    """

    negative_caption: str | None
    reason: str | None
    attempts: int
    outputs: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.negative_caption is not None


@dataclass
class NegativeCaptionWriter:
    """Writes one negative caption per caption with a `LanguageModel` and the paper's prompt.

    Args:
        lm: the language model.
        prompt: the instruction template with one ``{}`` for the caption (default: the paper's, verbatim).
        max_new_tokens: generation budget per answer.
        do_sample, temperature, top_p: decoding of the first attempt (greedy by default).
        retry_temperature: retries always sample, at this temperature (greedy would repeat the same answer).
        max_retries: how many more attempts a rejected answer gets before the caption is marked rejected.
        batch_size: prompts per generation batch.
        min_length_ratio, max_length_ratio: the length window of :func:`validate_negative_caption`.
    """

    lm: LanguageModel
    prompt: str = NEGATIVE_CAPTION_PROMPT
    max_new_tokens: int = 96
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    retry_temperature: float = 1.0
    max_retries: int = 2
    batch_size: int = 16
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0

    def __post_init__(self):
        negative_caption_prompt("", self.prompt)  # checks the template has one {}
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be zero or more, got {self.max_retries}.")

    def generate(self, captions: Sequence[str], seed: int = 0) -> list[NegativeCaptionResult]:
        """One `NegativeCaptionResult` per caption, in order.

        Attempt ``a`` (0 = first) of the still-rejected captions runs with the seed ``seed + 1_000_003 * a``.
        """
        results = [NegativeCaptionResult(None, None, 0) for _ in captions]
        pending = list(range(len(captions)))
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            sample = self.do_sample or attempt > 0
            answers = self.lm.complete(
                [negative_caption_prompt(captions[i], self.prompt) for i in pending],
                max_new_tokens=self.max_new_tokens, do_sample=sample,
                temperature=self.temperature if attempt == 0 else self.retry_temperature, top_p=self.top_p,
                batch_size=self.batch_size, seed=seed + 1_000_003 * attempt,
            )
            still = []
            for i, answer in zip(pending, answers):
                result = results[i]
                result.attempts += 1
                result.outputs.append(answer)
                cleaned = clean_output(answer)
                reason = validate_negative_caption(cleaned, captions[i], self.min_length_ratio, self.max_length_ratio)
                if reason is None:
                    result.negative_caption, result.reason = " ".join(cleaned.split()), None
                else:
                    result.reason = reason
                    still.append(i)
            pending = still
        if pending:
            logger.debug("%d of %d captions rejected after %d attempts", len(pending), len(captions),
                         self.max_retries + 1)
        return results
