"""`lm-eval` (EleutherAI's lm-evaluation-harness) model for both faces of a `DualLM`.

Importing this module registers the model as `"keras-dualobj"` in the harness's
registry (the optional extra `pip install keras-dualobj[eval]` installs `lm-eval`):

    import lm_eval, keras_dualobj.lm_eval.model
    lm_eval.simple_evaluate(model="keras-dualobj",
                            model_args="path=model.keras,mode=md,mc_samples=32",
                            tasks=["arc_easy"])

or `keras-dualobj evaluate model.keras --tasks arc_easy --modes ar md` from the CLI.

Modes (`model_args` `mode=`), all scoring the continuation's tokens given the context:

- `ar`: causal attention, exact `log p`;
- `prefix`: bidirectional over the context, causal over the continuation, exact;
- `md`: minus the masked-diffusion bound, only the continuation masked
  (`keras_dualobj.evaluation.md_bound`, `mc_samples` samples, `seed`): a lower bound
  on `log p` whose masks depend on the request and the seed only, not on the batch;
- `pll`: the exact pseudo-log-likelihood (one continuation token masked at a time);
  with `pll_masks=following`, each continuation token is scored with it and every
  later continuation token masked (the multi-token, left-to-right variant).

`loglikelihood_rolling` cuts a document into the harness's rolling windows of the
model's `max_sequence_length` (every token scored once, later windows with a full
context) and sums each window's score: exact in `ar`/`prefix`, the MD bound in `md`
(`pll` is a score, not a likelihood, and is refused). `generate_until` decodes greedily
with the AR face and its KV cache (`ar`, `prefix`) or by masked diffusion (`md`, `pll`;
one token revealed per step), then cuts at the first stop string.

Requests are sorted by length and scored `batch_size` rows at a time, padded to
lengths rounded up to a multiple of 16 (at most the model's maximum), so that the
compiled scoring functions see few shapes. A context longer than fits is cut from the
left, as the harness's own models do, and the number of such requests is logged.
"""

import logging
import math

import numpy as np
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows
from lm_eval.utils import make_disjoint_window

from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_int

HARNESS_MODES = ("ar", "prefix", "md", "pll")
PLL_MASKS = ("single", "following")
LENGTH_MULTIPLE = 16
logger = logging.getLogger(__name__)


def _as_int(name, value, minimum):
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    check_int(name, value, minimum=minimum)
    return value


@register_model("keras-dualobj")
class KerasDualLM(LM):
    """A `DualLM` as an lm-eval model (see the module docstring for the modes).

    Args:
        path: a saved `.keras` `DualLM` with its tokenizer (exclusive with `model`).
        model: a `DualLM` object with a tokenizer.
        mode: `"ar"`, `"prefix"`, `"md"` or `"pll"`.
        mc_samples: int >= 1, masks per request in mode `"md"`.
        seed: int >= 0, seed of those masks.
        batch_size: int >= 1, rows per forward pass.
        max_gen_toks: default number of new tokens in `generate_until`.
        pll_masks: mode `"pll"`: `"single"` (one token masked at a time) or
            `"following"` (that token and every later continuation token masked).

    Example:
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> from keras_dualobj.data import ByteTokenizer
    >>> model = DualLM(DualBackbone(vocabulary_size=272, num_layers=1, num_heads=2,
    ...                             hidden_dim=16, intermediate_dim=32),
    ...                tokenizer=ByteTokenizer())
    >>> harness_model = KerasDualLM(model=model, mode="ar")
    >>> [round(x, 3) < 0 for x, _ in harness_model.score_pairs([("Hi", " there")])]
    [True]
    """

    def __init__(
        self,
        path=None,
        model=None,
        mode="ar",
        mc_samples=16,
        seed=0,
        batch_size=16,
        max_gen_toks=64,
        pll_masks="single",
        **unused,
    ):
        super().__init__()
        if unused:
            # The harness passes `device` and `max_batch_size` to every model.
            harmless = {"device", "max_batch_size", "trust_remote_code"}
            unknown = sorted(set(unused) - harmless)
            if unknown:
                raise ValueError(
                    f"Unknown keras-dualobj model_args {unknown}; accepted: path, mode, "
                    "mc_samples, seed, batch_size, max_gen_toks, pll_masks."
                )
        if (path is None) == (model is None):
            raise ValueError("Pass exactly one of `path` (a saved .keras DualLM) or `model`.")
        if model is None:
            from keras_dualobj.models.saving import load_model

            model = load_model(path)
        if model.tokenizer is None:
            raise ValueError("The harness passes text: the model needs a tokenizer.")
        check_choice("mode", mode, HARNESS_MODES)
        check_choice("pll_masks", pll_masks, PLL_MASKS)
        self.pll_masks = pll_masks
        self.model = model
        self.mode = mode
        self.mc_samples = _as_int("mc_samples", mc_samples, 1)
        self.seed = _as_int("seed", seed, 0)
        self.batch_size = _as_int("batch_size", 16 if batch_size == "auto" else batch_size, 1)
        self.max_gen_toks = _as_int("max_gen_toks", max_gen_toks, 1)
        self.max_length = model.backbone.max_sequence_length

    # --- Tokens ---------------------------------------------------------------

    def tokenize(self, text):
        """Token ids of `text` (no `<s>`), a list of ints."""
        if not text:
            return []
        return np.asarray(self.model.tokenizer.tokenize(text)).reshape(-1).astype(int).tolist()

    def _fit_context(self, context, continuation, where):
        """`context + continuation` within `max_length`, cutting the context's left."""
        if not continuation:
            raise ValueError(f"{where}: the continuation has no tokens to score.")
        if len(continuation) > self.max_length - 1:
            raise ValueError(
                f"{where}: the continuation has {len(continuation)} tokens; at most "
                f"{self.max_length - 1} fit after one context token (max_sequence_length "
                f"{self.max_length})."
            )
        room = self.max_length - len(continuation)
        return context[-room:], len(context) > room

    # --- Scoring --------------------------------------------------------------

    def score_pairs(self, pairs):
        """`[(log-likelihood, is_greedy)]` of text `(context, continuation)` pairs."""
        token_pairs = [
            ([self.model.bos_token_id] + self.tokenize(context), self.tokenize(continuation))
            for context, continuation in pairs
        ]
        return self.score_token_pairs(token_pairs)

    def score_token_pairs(self, token_pairs, mode=None):
        """`[(log-likelihood, is_greedy)]` of `(context ids, continuation ids)` pairs."""
        mode = self.mode if mode is None else mode
        fitted, truncated = [], 0
        for index, (context, continuation) in enumerate(token_pairs):
            context, cut = self._fit_context(list(context), list(continuation), f"request {index}")
            fitted.append((context, list(continuation)))
            truncated += cut
        if truncated:
            logger.warning(
                "%d of %d requests had their context cut from the left to fit %d tokens.",
                truncated, len(fitted), self.max_length,
            )
        order = sorted(range(len(fitted)), key=lambda i: -sum(map(len, fitted[i])))
        results = [None] * len(fitted)
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            scored = self._score_batch([fitted[i] for i in indices], mode)
            for i, nll, greedy in zip(indices, scored["nll"], scored["greedy"]):
                results[i] = (-float(nll), bool(greedy))
        return results

    def _score_batch(self, pairs, mode):
        longest = max(len(context) + len(continuation) for context, continuation in pairs)
        length = min(self.max_length, max(2, math.ceil(longest / LENGTH_MULTIPLE) * LENGTH_MULTIPLE))
        rows = self.batch_size
        token_ids = np.full((rows, length), self.model.pad_token_id, "int32")
        document_ids = np.ones((rows, length), "int32")
        target_mask = np.zeros((rows, length), bool)
        prefix_lengths = np.zeros((rows,), "int32")
        for row, (context, continuation) in enumerate(pairs):
            end = len(context) + len(continuation)
            token_ids[row, :end] = context + continuation
            document_ids[row, :end] = 0
            target_mask[row, len(context) : end] = True
            prefix_lengths[row] = len(context)
        options = {"target_mask": target_mask, "document_ids": document_ids}
        if mode == "prefix":
            options["prefix_lengths"] = prefix_lengths
        if mode == "md":
            options.update(num_samples=self.mc_samples, seed=self.seed)
        if mode == "pll":
            options["mask_following"] = self.pll_masks == "following"
        scored = self.model.score(token_ids, mode, **options)
        return {name: scored[name][: len(pairs)] for name in ("nll", "greedy")}

    # --- The harness's interface -------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm=False):
        return self.score_pairs([request.args for request in requests])

    def rolling_windows(self, text):
        """The harness's rolling windows of `text` as `(context ids, target ids)`."""
        windows = get_rolling_token_windows(
            token_list=self.tokenize(text),
            prefix_token=self.model.bos_token_id,
            max_seq_len=self.max_length - 1,
            context_len=1,
        )
        return [make_disjoint_window(window) for window in windows]

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        if self.mode == "pll":
            raise ValueError(
                "mode='pll' gives a score, not a log-likelihood: loglikelihood_rolling "
                "(perplexity) needs mode 'ar', 'prefix' or 'md'."
            )
        windows, owners = [], []
        for index, request in enumerate(requests):
            for window in self.rolling_windows(request.args[0]):
                windows.append(window)
                owners.append(index)
        scores = self.score_token_pairs(windows) if windows else []
        totals = np.zeros((len(requests),), "float64")
        for owner, (log_likelihood, _) in zip(owners, scores):
            totals[owner] += log_likelihood
        return totals.tolist()

    def generate_until(self, requests, disable_tqdm=False):
        outputs = []
        for request in requests:
            context, options = request.args
            outputs.append(self._generate_one(context, dict(options or {})))
        return outputs

    def _generate_one(self, context, options):
        until = options.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_new_tokens = _as_int("max_gen_toks", options.pop("max_gen_toks", self.max_gen_toks), 1)
        max_new_tokens = min(max_new_tokens, self.max_length - 1)
        prompt = [self.model.bos_token_id] + self.tokenize(context)
        prompt = prompt[-(self.max_length - max_new_tokens) :]
        # Greedy, as lm-eval's generation tasks expect, with the face `mode` scores.
        if self.mode in ("ar", "prefix"):
            decoder = ARDecoder("greedy")
        else:
            decoder = MDDecoder(temperature=0.0)
        new_ids = self.model.generate(
            [prompt], max_new_tokens=max_new_tokens, strip_prompt=True, decoder=decoder
        )[0]
        new_ids = np.asarray(new_ids).tolist()
        ends = [i for i, t in enumerate(new_ids) if t in (self.model.eos_token_id, self.model.pad_token_id)]
        new_ids = new_ids[: ends[0]] if ends else new_ids
        text = self.model.tokenizer.detokenize(np.asarray(new_ids, "int32"))
        text = text.numpy().decode("utf-8", "replace") if hasattr(text, "numpy") else str(text)
        for stop in until:
            if stop and stop in text:
                text = text[: text.index(stop)]
        return text
