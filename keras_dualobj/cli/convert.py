"""`keras-dualobj convert`: models into a Keras `.keras` `DualLM`, and back out.

The paper's released reference (PyTorch) models:

    keras-dualobj convert state_dict.bin --config large.json --tokenizer tokenizer.json \\
        --output model.keras
    keras-dualobj convert path/to/model_folder --output model.keras --ar-fraction 0.75
    keras-dualobj convert hf://ltg/<repository>@<revision> --output model.keras  # internet

keras-hub's Llama 3 and Qwen 2 models (a preset handle, `hf://` path or local preset
folder), and a `DualLM` back to keras-hub and Hugging Face Transformers:

    keras-dualobj convert --from-keras-hub llama3.2_1b --output model.keras
    keras-dualobj convert runs/llama/model.keras --to-keras-hub hub_preset \\
        --to-transformers hf_folder

The result is a `DualLM` like any trained here: `keras-dualobj train --init`,
`generate` and `evaluate` take it, and `keras_dualobj.load_model` loads it.
"""

import argparse
import json
from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert a reference checkpoint or a keras-hub model to .keras, or a .keras "
             "model to keras-hub / Transformers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", nargs="?",
        help="checkpoint file (.bin via torch, .safetensors), model folder or "
             "hf://owner/name@rev; with --to-keras-hub / --to-transformers a .keras DualLM",
    )
    parser.add_argument("--from-keras-hub", metavar="PRESET_OR_DIR",
                        help="a keras-hub Llama 3 / Qwen 2 preset (handle, hf:// path or folder)")
    parser.add_argument("--to-keras-hub", metavar="DIR",
                        help="write the .keras DualLM as a keras-hub preset folder")
    parser.add_argument("--to-transformers", metavar="DIR",
                        help="write the .keras DualLM as a Hugging Face Transformers folder")
    parser.add_argument("--family", choices=("llama3", "qwen"),
                        help="keras-hub family to export to (default: from the architecture)")
    parser.add_argument("--sequence-length", type=int,
                        help="row length of the converted model's preprocessor "
                             "(default: the preset's, else 1024)")
    parser.add_argument("--config", help="the reference's JSON config (default: the folder's)")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the folder's, if any)")
    parser.add_argument("--output", help="where to write the .keras model")
    parser.add_argument(
        "--ar-fraction", type=float, default=0.5, help="AR share α kept for fine-tuning"
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a .bin with full pickle (only for files you trust)",
    )
    parser.set_defaults(run=run)


def _check_arguments(args):
    exporting = args.to_keras_hub is not None or args.to_transformers is not None
    sources = [name for name, given in (("a checkpoint", args.checkpoint is not None),
                                        ("--from-keras-hub", args.from_keras_hub is not None))
               if given]
    if len(sources) != 1:
        raise ValueError(
            "Give one model to convert: a checkpoint / .keras path or --from-keras-hub; "
            f"received {sources or 'neither'}."
        )
    if exporting and args.from_keras_hub is not None:
        raise ValueError("--to-keras-hub / --to-transformers take a .keras model, not "
                         "--from-keras-hub.")
    if exporting and not str(args.checkpoint).endswith(".keras"):
        raise ValueError(f"--to-keras-hub / --to-transformers take a .keras DualLM; "
                         f"received {args.checkpoint!r}.")
    if not exporting and (args.output is None or Path(args.output).suffix != ".keras"):
        raise ValueError(f"--output must end in .keras; received {args.output!r}.")
    return exporting


def run(args):
    if _check_arguments(args):
        return _export(args)
    from keras_dualobj.convert import from_keras_hub
    from keras_dualobj.convert import load_reference_model

    output = Path(args.output)
    if args.from_keras_hub is not None:
        model = from_keras_hub(args.from_keras_hub, sequence_length=args.sequence_length,
                               ar_fraction=args.ar_fraction)
        tokenizer = None if model.tokenizer is None else type(model.tokenizer).__name__
    else:
        model = load_reference_model(
            args.checkpoint,
            ar_fraction=args.ar_fraction,
            config=args.config,
            tokenizer=args.tokenizer,
            trust_pickle=args.trust_pickle,
        )
        tokenizer = None if model.tokenizer is None else str(args.tokenizer or "folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    backbone = model.backbone
    print(
        json.dumps(
            {
                "output": str(output),
                "parameters": backbone.count_params(),
                "layers": backbone.num_layers,
                "hidden_dim": backbone.hidden_dim,
                "vocabulary_size": backbone.vocabulary_size,
                "tokenizer": tokenizer,
            }
        )
    )
    return 0


def _export(args):
    from keras_dualobj.convert import to_keras_hub
    from keras_dualobj.models.saving import load_model

    hub_model = to_keras_hub(load_model(args.checkpoint), family=args.family)
    written = {"input": args.checkpoint, "class": type(hub_model).__name__}
    if args.to_keras_hub is not None:
        hub_model.save_to_preset(args.to_keras_hub)
        written["keras_hub"] = args.to_keras_hub
    if args.to_transformers is not None:
        hub_model.export_to_transformers(args.to_transformers)
        written["transformers"] = args.to_transformers
    print(json.dumps(written))
    return 0
