"""`generate()`'s options, validated and given their defaults in one place, once per call.

Each mode has its own options (AR: `sampler`, `use_cache`; MD: `num_steps`,
`block_length`, `remasking`); passing one to the other mode is an error, not ignored.
`temperature` means a sampler's temperature for AR and the proposal temperature for MD.

The defaults (`AR_DEFAULTS`, `MD_DEFAULTS`, `shortest_block_length`) are also what the
summary sample of `keras-dualobj train` uses. They were chosen by
`benchmarks/generation_defaults.py`: on models of the byte presets (`nano`, `tiny`,
`small`) trained as `keras-dualobj train` trains them, it decodes held-out prompts with
each candidate and measures readability (letters x distinct character 3-grams x words
seen in training; table in `docs/generation.md`). Greedy AR decoding loops (`"___()"
"___()"`); top-k sampling at a temperature below 1 scored best. MD decoding in one block
filled most of the canvas with spaces (the most probable byte wherever the context is
far), at any temperature; the shortest blocks the steps allow, sampled at a low
temperature, scored best, and fewer steps than new tokens are best spent on blocks
revealed in one step each.
"""

import dataclasses

from keras_dualobj.generation.ar_decoding import check_sampler_options
from keras_dualobj.generation.md_decoding import check_md_options
from keras_dualobj.generation.md_decoding import reveal_schedule
from keras_dualobj.generation.speculative import check_speculative_options
from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

GENERATION_MODES = ("ar", "md", "speculative")
MODE_OPTIONS = {
    "ar": ("sampler", "use_cache"),
    "md": ("num_steps", "block_length", "remasking", "threshold", "prefix_cache"),
    "speculative": ("draft_length", "draft_steps", "draft_mode"),
}
DEFAULT_MAX_NEW_TOKENS = 32
# The defaults of `generate` and of `keras-dualobj train`'s summary samples (see above).
AR_DEFAULTS = {"sampler": "top_k", "temperature": 0.5}  # keras-hub's top_k: k = 5
MD_DEFAULTS = {"remasking": "confidence", "temperature": 0.5}  # blocks: shortest_block_length
# Speculative decoding's defaults: the cheap cached draft accepted more and cost less
# than the full bidirectional one in benchmarks/speculative_decoding.py; the output is
# the AR face's either way.
SPECULATIVE_DEFAULTS = {"draft_length": 4, "draft_steps": 1, "draft_mode": "cached"}


@dataclasses.dataclass(frozen=True)
class GenerationOptions:
    """Resolved options of one `generate()` call (see `resolve_generation_options`)."""

    mode: str
    max_new_tokens: int = None
    max_length: int = None
    stop_token_ids: tuple = None
    strip_prompt: bool = False
    temperature: float = None
    seed: int = None
    sampler: object = "greedy"
    sampler_kwargs: dict = None
    use_cache: bool = True
    num_steps: int = None
    block_length: int = None
    remasking: str = "confidence"
    schedule: tuple = None
    draft_length: int = None
    draft_steps: int = None
    draft_mode: str = None
    threshold: float = None
    prefix_cache: bool = False
    shortest_blocks: bool = False

    def new_tokens(self, longest_prompt):
        """New tokens per row for MD (every row gets the same number)."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return self.max_length - longest_prompt

    def for_new_tokens(self, num_new_tokens):
        """These options with the default MD blocks (`shortest_blocks`) fixed for a length."""
        if not self.shortest_blocks:
            return self
        num_steps = num_new_tokens if self.num_steps is None else self.num_steps
        return dataclasses.replace(
            self,
            shortest_blocks=False,
            block_length=shortest_block_length(num_new_tokens, num_steps),
            schedule=None,
        )


def shortest_block_length(num_new_tokens, num_steps):
    """The default MD `block_length`: the shortest blocks that `num_steps` can share evenly.

    The least `b` dividing `num_new_tokens` whose `num_new_tokens / b` blocks divide
    `num_steps`: with one step per new token (the default), blocks of one token, decoded
    left to right; with fewer steps, one step per block when the steps divide the new
    tokens; a single block when nothing shorter fits.

    Example:
    >>> [shortest_block_length(64, steps) for steps in (64, 16, 12, 1)]
    [1, 4, 16, 64]
    >>> shortest_block_length(5, 2)
    5
    """
    check_int("num_new_tokens", num_new_tokens, minimum=1)
    check_int("num_steps", num_steps, minimum=1)
    # One block (b = num_new_tokens) always fits: the search ends there at the latest.
    return next(
        block_length
        for block_length in range(1, num_new_tokens + 1)
        if num_new_tokens % block_length == 0
        and num_steps % (num_new_tokens // block_length) == 0
    )


def describe_defaults(mode):
    """In words, what `generate(mode=mode)` does with no decoding option given.

    Example:
    >>> describe_defaults("ar")
    'top-k sampling (k = 5) at temperature 0.5, KV cache'
    >>> describe_defaults("md")
    'one token per step, blocks as short as the steps allow, sampled at temperature 0.5'
    """
    check_choice("mode", mode, ("ar", "md"))
    if mode == "ar":
        return (
            f"{AR_DEFAULTS['sampler'].replace('_', '-')} sampling (k = 5) at temperature "
            f"{AR_DEFAULTS['temperature']}, KV cache"
        )
    return (
        "one token per step, blocks as short as the steps allow, sampled at temperature "
        f"{MD_DEFAULTS['temperature']}"
    )


def resolve_stop_token_ids(stop_token_ids, eos_token_id, pad_token_id):
    """`"auto"` -> `(eos,)`; `None` -> `None`; an id or ids -> a tuple of ints.

    Example:
    >>> resolve_stop_token_ids("auto", eos_token_id=2, pad_token_id=3)
    (2,)
    """
    if stop_token_ids is None:
        return None
    if isinstance(stop_token_ids, str):
        check_choice("stop_token_ids", stop_token_ids, ("auto",))
        return (eos_token_id,)
    try:
        stop_token_ids = tuple(stop_token_ids)
    except TypeError:
        stop_token_ids = (stop_token_ids,)
    for token_id in stop_token_ids:
        check_int("stop_token_ids", token_id, minimum=0)
    if pad_token_id in stop_token_ids:
        # Rows are padded with it before decoding: every row would look finished.
        raise ValueError(
            f"`stop_token_ids` must not contain the padding id {pad_token_id}; "
            f"received stop_token_ids={stop_token_ids}."
        )
    return tuple(int(token_id) for token_id in stop_token_ids) or None


def resolve_generation_options(
    mode,
    *,
    max_length,
    max_new_tokens,
    stop_token_ids,
    strip_prompt,
    eos_token_id,
    pad_token_id,
    default_sampler=None,
    **options,
):
    """Validates `generate()`'s options and fills in every default.

    Args:
        mode: `"ar"`, `"md"` or `"speculative"`.
        max_length, max_new_tokens: at most one; neither means 32 new tokens.
        stop_token_ids, strip_prompt: as in `DualLM.generate`.
        eos_token_id, pad_token_id: the model's.
        default_sampler: the sampler given to `compile(sampler=...)`, if any.
        **options: `temperature`, `seed`, `sampler`, `use_cache`, `num_steps`,
            `block_length`, `remasking`, `threshold`, `prefix_cache`, `draft_length`,
            `draft_steps`, `draft_mode` (`None` = default).

    Returns:
        A `GenerationOptions`.

    Example:
    >>> options = resolve_generation_options("md", max_length=None, max_new_tokens=8,
    ...     stop_token_ids=None, strip_prompt=False, eos_token_id=2, pad_token_id=3,
    ...     num_steps=4)
    >>> options.remasking, options.temperature, options.block_length, options.schedule
    ('confidence', 0.5, 2, ((0, 2), (1, 2), (2, 2), (3, 2)))
    """
    check_choice("mode", mode, GENERATION_MODES)
    if not isinstance(strip_prompt, bool):
        raise TypeError(f"`strip_prompt` must be True or False; received {strip_prompt!r}.")
    for other_mode, names in MODE_OPTIONS.items():
        given = sorted(name for name in names if options.get(name) is not None)
        if other_mode != mode and given:
            raise ValueError(
                f"{given} only apply to mode={other_mode!r}; received them with "
                f"mode={mode!r}."
            )
    if max_length is not None and max_new_tokens is not None:
        raise ValueError(
            "Pass at most one of `max_length` (total tokens per row, keras-hub's) and "
            f"`max_new_tokens`; received max_length={max_length!r}, "
            f"max_new_tokens={max_new_tokens!r}."
        )
    if max_length is not None:
        check_int("max_length", max_length, minimum=2)
    else:
        max_new_tokens = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
        check_int("max_new_tokens", max_new_tokens, minimum=1)
    resolved = dict(
        mode=mode,
        max_length=max_length,
        max_new_tokens=max_new_tokens,
        stop_token_ids=resolve_stop_token_ids(stop_token_ids, eos_token_id, pad_token_id),
        strip_prompt=strip_prompt,
        seed=options.get("seed"),
    )
    if mode == "speculative":
        return _speculative_options(resolved, options)
    if mode == "ar":
        return _ar_options(resolved, options, default_sampler)
    return _md_options(resolved, options)


def _speculative_options(resolved, options):
    chosen = {
        name: default if options.get(name) is None else options[name]
        for name, default in SPECULATIVE_DEFAULTS.items()
    }
    temperature = options.get("temperature")
    temperature = check_speculative_options(
        temperature=0.0 if temperature is None else temperature, **chosen
    )
    if resolved["seed"] is not None:
        check_int("seed", resolved["seed"], minimum=0)
    return GenerationOptions(**resolved, temperature=temperature, **chosen)


def _ar_options(resolved, options, default_sampler):
    sampler, temperature = options.get("sampler"), options.get("temperature")
    if sampler is None and default_sampler is None:
        sampler = AR_DEFAULTS["sampler"]
        temperature = AR_DEFAULTS["temperature"] if temperature is None else temperature
    elif sampler is None:
        sampler = default_sampler
    use_cache = True if options.get("use_cache") is None else options["use_cache"]
    if not isinstance(use_cache, bool):
        raise ValueError(f"`use_cache` must be True or False; received {use_cache!r}.")
    sampler_kwargs = check_sampler_options(sampler, temperature, resolved["seed"])
    return GenerationOptions(
        **resolved,
        temperature=temperature,
        sampler=sampler,
        sampler_kwargs=sampler_kwargs,
        use_cache=use_cache,
    )


def _md_options(resolved, options):
    resolved = dict(resolved)
    remasking, temperature = options.get("remasking"), options.get("temperature")
    md_options = resolve_md_options(
        num_steps=options.get("num_steps"),
        block_length=options.get("block_length"),
        remasking=MD_DEFAULTS["remasking"] if remasking is None else remasking,
        temperature=MD_DEFAULTS["temperature"] if temperature is None else temperature,
        seed=resolved.pop("seed"),
    )
    md_options = dataclasses.replace(
        md_options,
        **resolve_md_speedups(options.get("threshold"), options.get("prefix_cache")),
        # A threshold decides how many positions each step reveals: one block, as given.
        shortest_blocks=options.get("block_length") is None and options.get("threshold") is None,
    )
    if md_options.threshold is not None and md_options.num_steps is not None:
        raise ValueError(
            "`num_steps` and `threshold` are exclusive (a threshold decides the steps); "
            f"received num_steps={md_options.num_steps}, threshold={md_options.threshold}."
        )
    schedule = None
    max_new_tokens = resolved["max_new_tokens"]
    if max_new_tokens is not None:
        # Known before the prompts are read: checked now, so a typo is reported
        # before any length problem, and computed once.
        md_options = md_options.for_new_tokens(max_new_tokens)
        num_steps = max_new_tokens if md_options.num_steps is None else md_options.num_steps
        schedule = tuple(reveal_schedule(max_new_tokens, num_steps, md_options.block_length))
    return dataclasses.replace(md_options, **resolved, schedule=schedule)


def resolve_md_options(num_steps=None, block_length=None, remasking=None, temperature=None,
                       seed=None):
    """The MD decoding options of `generate`, `infill` and `md_decode`, validated.

    `num_steps` and `block_length` are checked against the number of tokens to fill
    when it is known (`reveal_schedule`).

    Example:
    >>> resolve_md_options(remasking="random", temperature=1).temperature
    1.0
    """
    if seed is not None:
        check_int("seed", seed, minimum=0)
    remasking = "confidence" if remasking is None else remasking
    temperature = check_md_options(remasking, 0.0 if temperature is None else temperature)
    return GenerationOptions(
        mode="md",
        temperature=temperature,
        seed=seed,
        num_steps=num_steps,
        block_length=block_length,
        remasking=remasking,
    )


def resolve_md_speedups(threshold=None, prefix_cache=None):
    """`generate(mode="md")`'s `threshold` (τ in `[0, 1]` or `None`) and `prefix_cache` (bool).

    Example:
    >>> resolve_md_speedups(0.9, None)
    {'threshold': 0.9, 'prefix_cache': False}
    """
    if threshold is not None:
        threshold = check_float("threshold", threshold, minimum=0.0, maximum=1.0)
    prefix_cache = False if prefix_cache is None else prefix_cache
    if not isinstance(prefix_cache, bool):
        raise ValueError(f"`prefix_cache` must be True or False; received {prefix_cache!r}.")
    return {"threshold": threshold, "prefix_cache": prefix_cache}
