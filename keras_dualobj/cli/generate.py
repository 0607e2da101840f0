"""`keras-dualobj generate`: continue (or infill) prompts with a saved model.

    keras-dualobj generate model.keras --prompt "To be, or not" --max-new-tokens 64
    keras-dualobj generate model.keras --prompt "To be" --mode md --num-steps 32 --block-length 16
    keras-dualobj generate model.keras --prompt-ids "1 84 111" --sampler top_k --top-k 20 --seed 0
    keras-dualobj generate model.keras --prompt "To be, " --suffix " that is" --mode md \\
        --max-new-tokens 8
"""

import argparse
import json
from pathlib import Path


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


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "generate",
        help="continue or infill prompts with a saved model (AR or MD decoding)",
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
        "--mode", choices=("ar", "md", "speculative"), default="ar",
        help="ar (KV cache), md (masked diffusion) or speculative (MD drafts, AR verifies: the AR output, faster)",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="new tokens (the span length when infilling)"
    )
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    stops = parser.add_mutually_exclusive_group()
    stops.add_argument("--stop-token-ids", help='ids that end a row (default: "</s>")')
    stops.add_argument("--no-stop", action="store_true", help="always generate --max-new-tokens")
    parser.add_argument("--strip-prompt", action="store_true", help="print only the new tokens")
    ar = parser.add_argument_group("AR decoding (--mode ar)")
    ar.add_argument("--sampler", choices=("greedy", "top_k", "top_p", "random"), default=None)
    ar.add_argument("--top-k", type=int, default=None, help="k of --sampler top_k")
    ar.add_argument("--top-p", type=float, default=None, help="p of --sampler top_p")
    md = parser.add_argument_group("MD decoding (--mode md)")
    md.add_argument("--num-steps", type=int, default=None)
    md.add_argument("--block-length", type=int, default=None)
    md.add_argument("--remasking", choices=("confidence", "random"), default=None)
    md.add_argument("--threshold", type=float, default=None, help="reveal every position above this probability per step (at least one); replaces --num-steps")
    md.add_argument("--prefix-cache", action="store_true", help="encode the prompt and finished blocks once per block (block-causal attention; faster, approximate)")
    speculative = parser.add_argument_group("self-speculative decoding (--mode speculative)")
    speculative.add_argument("--draft-length", type=int, default=None, help="tokens drafted per AR pass (default 4)")
    speculative.add_argument("--draft-steps", type=int, default=None, help="MD passes per draft (default 1)")
    speculative.add_argument("--draft-mode", choices=("cached", "full", "fused"), default=None, help="draft against the AR cache (default), with a full bidirectional pass, or fused into the verify pass (one pass per iteration; greedy)")
    parser.add_argument("--output", help="also write prompts and outputs to this JSON file")
    parser.set_defaults(run=run)


def _sampler(args):
    if args.top_k is not None or args.top_p is not None:
        wanted = "top_k" if args.top_k is not None else "top_p"
        if args.sampler != wanted or (args.top_k is not None and args.top_p is not None):
            raise ValueError(
                f"--top-k goes with --sampler top_k and --top-p with --sampler top_p; "
                f"received --sampler {args.sampler}, --top-k {args.top_k}, --top-p {args.top_p}."
            )
        options = {"temperature": 1.0 if args.temperature is None else args.temperature}
        if args.seed is not None:
            options["seed"] = args.seed
        import keras_hub

        if wanted == "top_k":
            return keras_hub.samplers.TopKSampler(k=args.top_k, **options), {}
        return keras_hub.samplers.TopPSampler(p=args.top_p, **options), {}
    return args.sampler, {"temperature": args.temperature, "seed": args.seed}


# Each mode's own flags; giving one to another mode is an error, never ignored.
MODE_FLAGS = {
    "ar": (("--sampler", "sampler"), ("--top-k", "top_k"), ("--top-p", "top_p")),
    "md": (("--num-steps", "num_steps"), ("--block-length", "block_length"),
           ("--remasking", "remasking"), ("--threshold", "threshold"),
           ("--prefix-cache", "prefix_cache")),
    "speculative": (("--draft-length", "draft_length"), ("--draft-steps", "draft_steps"),
                    ("--draft-mode", "draft_mode")),
}


def _given(args, flags):
    return [flag for flag, name in flags if getattr(args, name) not in (None, False)]


def _check_mode_flags(args):
    for mode, flags in MODE_FLAGS.items():
        given = _given(args, flags)
        if given and mode != args.mode:
            raise ValueError(
                f"{', '.join(given)} apply to --mode {mode} only; received --mode {args.mode}."
            )


def _infill(model, args, prompts):
    if args.mode != "md":
        raise ValueError("Infilling (--suffix / --suffix-ids) needs --mode md.")
    ignored = _given(args, MODE_FLAGS["ar"] + MODE_FLAGS["speculative"] + (
        ("--threshold", "threshold"), ("--prefix-cache", "prefix_cache"),
        ("--stop-token-ids", "stop_token_ids"), ("--no-stop", "no_stop"),
        ("--strip-prompt", "strip_prompt"),
    ))
    if ignored:
        raise ValueError(
            f"{', '.join(ignored)} do not apply to infilling (--suffix / --suffix-ids): "
            "the span between prompt and suffix is always filled in full."
        )
    suffixes = args.suffix
    if args.suffix_ids is not None:
        suffixes = [parse_ids(text, "--suffix-ids") for text in args.suffix_ids]
    return model.infill(
        prompts,
        suffixes,
        span_length=args.max_new_tokens,
        num_steps=args.num_steps,
        block_length=args.block_length,
        remasking="confidence" if args.remasking is None else args.remasking,
        temperature=0.0 if args.temperature is None else args.temperature,
        seed=args.seed,
    )


def _mode_options(args):
    """`generate()` keyword arguments of the chosen mode."""
    if args.mode == "ar":
        sampler, options = _sampler(args)
        return {"sampler": sampler, **options}
    options = {"temperature": args.temperature, "seed": args.seed}
    names = [name for _, name in MODE_FLAGS[args.mode]]
    return {**options, **{name: getattr(args, name) for name in names}}


def _generate(args):
    from keras_dualobj.models.saving import load_model

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
        outputs = _infill(model, args, prompts)
    else:
        _check_mode_flags(args)
        if args.no_stop:
            stop_token_ids = None
        elif args.stop_token_ids is not None:
            stop_token_ids = tuple(parse_ids(args.stop_token_ids, "--stop-token-ids"))
        else:
            stop_token_ids = "auto"
        outputs = model.generate(
            prompts,
            mode=args.mode,
            max_new_tokens=args.max_new_tokens,
            stop_token_ids=stop_token_ids,
            strip_prompt=args.strip_prompt,
            **_mode_options(args),
        )
    outputs = [
        output if isinstance(output, str) else [int(token) for token in output]
        for output in outputs
    ]
    return prompts, outputs


def run(args):
    prompts, outputs = _generate(args)
    for output in outputs:
        print(output if isinstance(output, str) else " ".join(map(str, output)))
    if args.output:
        record = {
            "model": str(args.model),
            "mode": args.mode,
            "prompts": prompts,
            "outputs": outputs,
        }
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
