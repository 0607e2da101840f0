"""`keras-dualobj generate`: continue (or infill) prompts with a saved model.

    keras-dualobj generate model.keras --prompt "To be, or not" --max-new-tokens 64
    keras-dualobj generate model.keras --prompt "To be" --decoder md --num-steps 32 --block-length 16
    keras-dualobj generate model.keras --prompt-ids "1 84 111" --sampler top_k --top-k 20 --seed 0
    keras-dualobj generate model.keras --prompt "To be, " --suffix " that is" --decoder md \\
        --max-new-tokens 8

The decoder flags are made from the decoder classes' own arguments
(`keras_dualobj.decoders`): a flag left out keeps the class's default.
"""

import argparse
import json
from pathlib import Path

from keras_dualobj.decoders.signatures import decoder_arguments


def parse_ids(text, name):
    """`"1 20 21"` (spaces or commas) -> `[1, 20, 21]`.

    Example:
    >>> parse_ids("1, 20 21", "--prompt-ids")
    [1, 20, 21]
    """
    try:
        ids = [int(token) for token in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(
            f"{name} must be integers separated by spaces or commas; received {text!r}."
        ) from None
    if not ids:
        raise ValueError(f"{name} must not be empty; received {text!r}.")
    return ids


# Which argparse type (or choices) each decoder argument takes; the flags, which
# decoder has them, and their defaults come from the classes' signatures.
OPTION_TYPES = {
    "sampler": ("greedy", "top_k", "top_p", "random"),
    "num_steps": int,
    "block_length": int,
    "remasking": ("confidence", "random"),
    "threshold": float,
    "draft_length": int,
    "draft_steps": int,
    "draft_mode": ("cached", "full", "fused"),
}
OPTION_HELP = {
    "threshold": "reveal every position above this probability per step (at least one); "
                 "replaces --num-steps",
    "prefix_cache": "encode the prompt and finished blocks once per block (block-causal "
                    "attention; faster, approximate)",
    "use_cache": "recompute the full causal pass for every token (the slow baseline)",
    "draft_length": "tokens drafted per AR pass",
    "draft_steps": "MD passes per draft",
    "draft_mode": "draft against the AR cache, with a full bidirectional pass, or fused "
                  "into the verify pass (one pass per iteration; greedy)",
}
SHARED_OPTIONS = ("temperature", "seed")
DECODER_HELP = {
    "ar": "AR decoding (--decoder ar)",
    "md": "MD decoding (--decoder md)",
    "speculative": "self-speculative decoding (--decoder speculative): MD drafts, AR "
                   "verifies; the AR output, faster",
}


def decoder_flags():
    """`{decoder name: [(flag, argument, default)]}` from the decoder classes' signatures.

    Read without importing Keras (`keras_dualobj.decoders.signatures`): the flags exist
    before a mistyped one is reported.

    Example:
    >>> decoder_flags()["speculative"][0]
    ('--draft-length', 'draft_length', 4)
    """
    return {
        name: [(_flag(argument, default), argument, default)
               for argument, default in arguments if argument not in SHARED_OPTIONS]
        for name, arguments in decoder_arguments().items()
    }


def _flag(name, default):
    # A switch that is on by default is turned off: --no-use-cache.
    return f"--{'no-' if default is True else ''}{name.replace('_', '-')}"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "generate",
        help="continue or infill prompts with a saved model (AR, MD or speculative decoding)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="path of a saved .keras DualLM")
    prompts = parser.add_mutually_exclusive_group(required=True)
    prompts.add_argument(
        "--prompt", action="append", help="text prompt (repeat for a batch; needs a tokenizer)"
    )
    prompts.add_argument(
        "--prompt-ids", action="append", help='prompt token ids, e.g. "1 84 111" (repeatable)'
    )
    suffixes = parser.add_mutually_exclusive_group()
    suffixes.add_argument(
        "--suffix", action="append", help="infill: text after the span, one per prompt (md)"
    )
    suffixes.add_argument(
        "--suffix-ids", action="append", help="infill: token ids after the span (md)"
    )
    parser.add_argument(
        "--decoder", choices=tuple(DECODER_HELP), default="ar",
        help="ar (KV cache), md (masked diffusion) or speculative (MD drafts, AR verifies)",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="new tokens (the span length when infilling)"
    )
    parser.add_argument("--temperature", type=float, default=None,
                        help="the decoder's temperature (default: the decoder's)")
    parser.add_argument("--seed", type=int, default=None)
    stops = parser.add_mutually_exclusive_group()
    stops.add_argument("--stop-token-ids", help='ids that end a row (default: "</s>")')
    stops.add_argument("--no-stop", action="store_true", help="always generate --max-new-tokens")
    parser.add_argument("--strip-prompt", action="store_true", help="print only the new tokens")
    for name, flags in decoder_flags().items():
        group = parser.add_argument_group(DECODER_HELP[name])
        for flag, argument, default in flags:
            help_text = f"{OPTION_HELP.get(argument, '')} (default: {default})".strip()
            if isinstance(default, bool):
                group.add_argument(flag, dest=argument, action="store_const",
                                   const=not default, default=None, help=help_text)
                continue
            kind = OPTION_TYPES[argument]
            options = {"choices": kind} if isinstance(kind, tuple) else {"type": kind}
            group.add_argument(flag, dest=argument, default=None, help=help_text, **options)
        if name == "ar":
            group.add_argument("--top-k", type=int, default=None, help="k of --sampler top_k")
            group.add_argument("--top-p", type=float, default=None, help="p of --sampler top_p")
    parser.add_argument("--output", help="also write prompts and outputs to this JSON file")
    parser.set_defaults(run=run)


def _given(args, flags):
    return [flag for flag, name, _ in flags if getattr(args, name) is not None]


def _sampler(args):
    """`--sampler` with `--top-k` / `--top-p` as a keras-hub sampler instance, else the name."""
    if args.top_k is None and args.top_p is None:
        return args.sampler
    wanted = "top_k" if args.top_k is not None else "top_p"
    if args.sampler != wanted or (args.top_k is not None and args.top_p is not None):
        raise ValueError(
            f"--top-k goes with --sampler top_k and --top-p with --sampler top_p; "
            f"received --sampler {args.sampler}, --top-k {args.top_k}, --top-p {args.top_p}."
        )
    import keras_hub

    from keras_dualobj.decoders.ar import DEFAULT_TEMPERATURE

    options = {"temperature": DEFAULT_TEMPERATURE if args.temperature is None else args.temperature,
               "seed": args.seed}
    args.temperature = args.seed = None  # they are the instance's now
    if wanted == "top_k":
        return keras_hub.samplers.TopKSampler(k=args.top_k, **options)
    return keras_hub.samplers.TopPSampler(p=args.top_p, **options)


def build_decoder(args):
    """The decoder `--decoder` names, built from the flags given (the rest keep its defaults).

    Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_parser(parser.add_subparsers())
    >>> build_decoder(parser.parse_args(["generate", "m.keras", "--prompt-ids", "1",
    ...                                  "--decoder", "md", "--num-steps", "4"]))
    MDDecoder(seed=None, num_steps=4, block_length=None, remasking='confidence', temperature=0.5, threshold=None, prefix_cache=False)
    """
    from keras_dualobj.decoders import get

    flags = decoder_flags()
    for name, name_flags in flags.items():
        given = _given(args, name_flags)
        if given and name != args.decoder:
            raise ValueError(
                f"{', '.join(given)} apply to --decoder {name} only; received --decoder "
                f"{args.decoder}."
            )
    if args.decoder != "ar" and (args.top_k is not None or args.top_p is not None):
        raise ValueError(f"--top-k and --top-p apply to --decoder ar only; received --decoder {args.decoder}.")
    options = {name: getattr(args, name) for _, name, _ in flags[args.decoder]}
    if args.decoder == "ar":
        options["sampler"] = _sampler(args)
    options.update(temperature=args.temperature, seed=args.seed)
    return get(args.decoder, **{name: value for name, value in options.items() if value is not None})


def _infill(model, args, prompts, decoder):
    if args.decoder != "md":
        raise ValueError("Infilling (--suffix / --suffix-ids) needs --decoder md.")
    ignored = [flag for flag, name in (
        ("--threshold", "threshold"), ("--prefix-cache", "prefix_cache"),
        ("--stop-token-ids", "stop_token_ids"), ("--no-stop", "no_stop"),
        ("--strip-prompt", "strip_prompt"),
    ) if getattr(args, name) not in (None, False)]
    if ignored:
        raise ValueError(
            f"{', '.join(ignored)} do not apply to infilling (--suffix / --suffix-ids): "
            "the span between prompt and suffix is always filled in full."
        )
    suffixes = args.suffix
    if args.suffix_ids is not None:
        suffixes = [parse_ids(text, "--suffix-ids") for text in args.suffix_ids]
    return model.infill(prompts, suffixes, span_length=args.max_new_tokens, decoder=decoder)


def _generate(args):
    from keras_dualobj.models.saving import load_model

    decoder = build_decoder(args)
    model = load_model(args.model)
    for flag, given, ids_flag in (("--prompt", args.prompt, "--prompt-ids"),
                                  ("--suffix", args.suffix, "--suffix-ids")):
        if given is not None and model.tokenizer is None:
            raise ValueError(
                f"{flag} needs a tokenizer saved with the model, and {args.model!r} has none; "
                f"pass token ids with {ids_flag} instead."
            )
    if args.prompt is not None:
        prompts = args.prompt
    else:
        prompts = [parse_ids(text, "--prompt-ids") for text in args.prompt_ids]
    if args.suffix is not None or args.suffix_ids is not None:
        outputs = _infill(model, args, prompts, decoder)
    else:
        if args.no_stop:
            stop_token_ids = None
        elif args.stop_token_ids is not None:
            stop_token_ids = tuple(parse_ids(args.stop_token_ids, "--stop-token-ids"))
        else:
            stop_token_ids = "auto"
        outputs = model.generate(
            prompts,
            max_new_tokens=args.max_new_tokens,
            stop_token_ids=stop_token_ids,
            strip_prompt=args.strip_prompt,
            decoder=decoder,
        )
    outputs = [
        output if isinstance(output, str) else [int(token) for token in output]
        for output in outputs
    ]
    return decoder, prompts, outputs


def run(args):
    decoder, prompts, outputs = _generate(args)
    for output in outputs:
        print(output if isinstance(output, str) else " ".join(map(str, output)))
    if args.output:
        import keras

        record = {
            "model": str(args.model),
            "decoder": keras.saving.serialize_keras_object(decoder),
            "prompts": prompts,
            "outputs": outputs,
        }
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
