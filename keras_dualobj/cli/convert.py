"""`keras-dualobj convert`: a released reference (PyTorch) model to a Keras `.keras` file.

    keras-dualobj convert state_dict.bin --config large.json --tokenizer tokenizer.json \\
        --output model.keras
    keras-dualobj convert path/to/model_folder --output model.keras --ar-fraction 0.75
    keras-dualobj convert hf://ltg/<repository>@<revision> --output model.keras  # internet

The result is a `DualLM` like any trained here: `keras-dualobj generate` / `evaluate`
take it, and `keras_dualobj.load_model` loads it.
"""

import argparse
import json
from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert a released reference checkpoint (the paper's models) to .keras",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        help="checkpoint file (.bin via torch, .safetensors), model folder or hf://owner/name@rev",
    )
    parser.add_argument("--config", help="the reference's JSON config (default: the folder's)")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the folder's, if any)")
    parser.add_argument("--output", required=True, help="where to write the .keras model")
    parser.add_argument(
        "--ar-fraction", type=float, default=0.5, help="AR share α kept for fine-tuning"
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a .bin with full pickle (only for files you trust)",
    )
    parser.set_defaults(run=run)


def run(args):
    from keras_dualobj.convert import load_reference_model

    output = Path(args.output)
    if output.suffix != ".keras":
        raise ValueError(f"--output must end in .keras; received {args.output!r}.")
    model = load_reference_model(
        args.checkpoint,
        ar_fraction=args.ar_fraction,
        config=args.config,
        tokenizer=args.tokenizer,
        trust_pickle=args.trust_pickle,
    )
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
                "tokenizer": None if model.tokenizer is None else str(args.tokenizer or "folder"),
            }
        )
    )
    return 0
