"""The flags of a run's recipe (`RunSpec` fields), shared by `train` and `study`.

One table of help texts; each default shown in `--help` is read from `RunSpec`, where it
is written once (a setting a preset fills in says "the preset's"). Every flag's own
default is `None`, so that `train --resume` can tell what was given.
"""

import dataclasses

from keras_dualobj.cli.arguments import key_value
from keras_dualobj.cli.arguments import parse_fraction
from keras_dualobj.models.presets import PRESETS
from keras_dualobj.training.run_spec import PRECISIONS
from keras_dualobj.training.run_spec import PRESET_TRAINING_FIELDS
from keras_dualobj.training.run_spec import RunSpec

# field: (help without its default, argparse options). Grouped as `--help` lists them.
MODEL = {
    "preset": (f"{', '.join(PRESETS)}", {}),
    "ar_fraction": ("α, share of AR rows: a number or a fraction like 63/64",
                    {"type": parse_fraction}),
    "md_variant": ("shifted (MNTP, the paper's) or unshifted (MDLM)", {}),
    "ar_loss_weight": ("AR loss multiplier (the reference uses 2.0)", {"type": float}),
    "z_loss_weight": ("z-loss weight (the reference uses 1e-4)", {"type": float}),
    "elbo_samples": ("masks per held-out row for the MD ELBO", {"type": int}),
    "dropout": ("residual dropout", {"type": float}),
    "precision": (f"{', '.join(PRECISIONS)}", {}),
    "init": ("a saved DualLM .keras to continue training (e.g. from `keras-dualobj convert "
             "--from-keras-hub`), with its architecture and tokenizer; the preset then "
             "gives the recipe", {"metavar": "MODEL.keras"}),
    "backbone_overrides": (
        "replace a backbone setting of the preset, e.g. num_layers=2 (repeatable)",
        {"flag": "--backbone-override", "action": "append", "type": key_value,
         "metavar": "NAME=VALUE"},
    ),
}
DATA = {
    "source": ("auto, tfds, text, jsonl or builtin", {}),
    "path": ("file or folder for --source text / jsonl", {}),
    "tfds_name": ("TFDS dataset", {}),
    "local_copy": ("local copy of the TFDS raw download (builds offline)", {}),
    "document_split": ("paragraphs, lines, none or chunks", {}),
    "encoding": ("encoding of --source text / jsonl files", {}),
    "tokenizer": ("byte, bpe, or a saved tokenizer folder", {}),
    "vocabulary_size": ("BPE vocabulary size", {"type": int}),
    "sequence_length": ("tokens per row", {"type": int}),
    "batch_size": ("rows per step", {"type": int}),
    "repetitions": ("R, epochs over the unique tokens", {"type": int}),
    "unique_tokens": ("U, unique training tokens", {"type": int}),
    "token_budget": ("C, tokens seen in total (U = C / R)", {"type": int}),
    "seed": ("initialisation, row split, masks and data order", {"type": int}),
}
OPTIMISATION = {
    "optimizer": ("muon (Muon + AdamW, the paper's) or adamw", {}),
    "learning_rate": ("peak learning rate", {"type": float}),
    "warmup_fraction": ("share of steps warming up", {"type": float}),
    "decay_fraction": ("share of steps decaying", {"type": float}),
    "decay_shape": ("linear, cosine or 1-sqrt", {}),
    "weight_decay": ("decoupled weight decay", {"type": float}),
    "clip_norm": ("clip gradients to this global norm", {"type": float}),
    "accumulation_steps": ("micro-batches per update; --batch-size stays the rows of one update",
                           {"type": int}),
    "log_every": ("steps per logged segment", {"type": int}),
}
FLAGS = {**MODEL, **DATA, **OPTIMISATION}

# What a `None` default means where a preset does not fill it in (`RunSpec.resolved`).
_UNSET = {
    "repetitions": "1, raised to fit a small corpus when no budget is given",
    "clip_norm": "off",
    "init": "a fresh model of the preset",
}


def default_text(field, defaults=None):
    """The default `--help` shows for `field`: `defaults[field]`, else `RunSpec`'s.

    Example:
    >>> default_text("warmup_fraction"), default_text("batch_size"), default_text("path")
    ('0.01', "the preset's", None)
    """
    if defaults and field in defaults:
        return str(defaults[field])
    value = {f.name: f.default for f in dataclasses.fields(RunSpec)}[field]
    if value is not None:
        return str(value)
    if field in PRESET_TRAINING_FIELDS + ("token_budget",):
        return "the preset's"
    return _UNSET.get(field)


def add_recipe_flags(group, fields, defaults=None):
    """Adds the flag of each of `fields` (`RunSpec` field names) to `group`.

    `defaults`: the defaults of this command where they differ from `RunSpec`'s (the
    study's `elbo_samples`); `--help` shows them.
    """
    for field in fields:
        help_text, options = FLAGS[field]
        options = dict(options)
        flag = options.pop("flag", "--" + field.replace("_", "-"))
        shown = default_text(field, defaults)
        if shown is not None:
            help_text = f"{help_text} (default: {shown})"
        group.add_argument(flag, dest=field, help=help_text, **options)
