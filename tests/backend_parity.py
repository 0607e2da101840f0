"""Cross-backend parity worker: the same weights and batch scored under one backend.

`tests/test_backend_parity.py` writes a tiny trained `DualLM` (`model.keras`), its
training checkpoint, a fixed batch and fixed MD masks into a folder under the backend
of the test session, then runs this file under each other backend:

    KERAS_BACKEND=jax python tests/backend_parity.py FOLDER OUTPUT.npz

It loads the `.keras` file, and separately restores the checkpoint into a freshly
built model, scores the batch both ways (`score_batch`) and writes the arrays, plus
the random draws of a few seeded calls (`random_draws`), which are *not* expected
to agree across backends, to `OUTPUT.npz`.
"""

import sys
from pathlib import Path

import numpy as np

from conftest import tiny_backbone

VOCABULARY_SIZE = 48
LENGTH = 16
BATCH_SIZE = 4
# Per row: 0 is causal, LENGTH bidirectional, in between a prefix-LM split.
PREFIX_LENGTHS = np.array([0, 3, 8, LENGTH], "int32")
CHECKPOINT = "checkpoint"
MODEL_FILE = "model.keras"
BATCH_FILE = "batch.npz"


def fixed_batch():
    """Token ids with two packed documents per row, padding, and fixed MD masks."""
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, VOCABULARY_SIZE, (BATCH_SIZE, LENGTH)).astype("int32")
    token_ids[:, 0] = 1
    token_ids[:, 9] = 1  # second document starts at 9
    token_ids[3, -3:] = 3  # padding at the end of the last row
    document_ids = (np.arange(LENGTH) >= 9).astype("int32")[None].repeat(BATCH_SIZE, 0)
    # Masks drawn with NumPy among the shifted-MD maskable positions (not <s>, not
    # <pad>, not a document's first token), at least one per row.
    maskable = (token_ids > 4) & (document_ids == np.roll(document_ids, 1, axis=1))
    maskable[:, 0] = False
    masked = maskable & (rng.random((BATCH_SIZE, LENGTH)) < 0.5)
    for row in range(BATCH_SIZE):
        if not masked[row].any():
            masked[row, np.flatnonzero(maskable[row])[0]] = True
    mask_fraction = (masked.sum(1) / maskable.sum(1)).astype("float32")
    return {
        "token_ids": token_ids,
        "document_ids": document_ids,
        "masked_positions": masked,
        "maskable_positions": maskable,
        "mask_fraction": mask_fraction,
    }


def build_model(seed=0):
    """The tiny `DualLM` every backend builds (weights depend on the backend's RNG)."""
    import keras

    from keras_dualobj import DualLM

    keras.utils.set_random_seed(seed)
    backbone = tiny_backbone(vocabulary_size=VOCABULARY_SIZE, max_sequence_length=32)
    model = DualLM(backbone, ar_fraction=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    return model


def write_fixture(directory):
    """Trains a few steps under this backend; saves model, checkpoint and batch."""
    from keras_dualobj.training.checkpoints import save_training_state

    directory = Path(directory)
    batch = fixed_batch()
    model = build_model()
    model.fit(
        {"token_ids": batch["token_ids"], "document_ids": batch["document_ids"]},
        batch_size=BATCH_SIZE,
        epochs=2,
        verbose=0,
    )
    model.save(directory / MODEL_FILE)
    save_training_state(model, directory / CHECKPOINT, step=2)
    np.savez(directory / BATCH_FILE, **batch)
    return model, batch


def score_batch(model, batch):
    """Causal / bidirectional / prefix logits, AR loss and MD loss (fixed masks)."""
    from keras import ops

    from keras_dualobj import objectives

    token_ids, document_ids = batch["token_ids"], batch["document_ids"]
    outputs = {}
    for mode, lengths in (
        ("causal", np.zeros(BATCH_SIZE, "int32")),
        ("bidirectional", np.full(BATCH_SIZE, LENGTH, "int32")),
        ("prefix", PREFIX_LENGTHS),
    ):
        outputs[f"{mode}_logits"] = model.logits(token_ids, document_ids, lengths)
    outputs["ar_loss"] = objectives.ar_loss(
        token_ids, outputs["causal_logits"], document_ids, model.pad_token_id
    )
    masked = batch["masked_positions"]
    md_logits = model.logits(
        np.where(masked, model.mask_token_id, token_ids),
        document_ids,
        np.full(BATCH_SIZE, LENGTH, "int32"),
    )
    outputs["md_loss"] = objectives.md_loss(
        token_ids,
        md_logits,
        masked,
        batch["mask_fraction"],
        batch["maskable_positions"],
    )
    return {name: ops.convert_to_numpy(value).astype("float32") for name, value in outputs.items()}


def random_draws(batch):
    """Seeded draws of this backend: initial weights, row split, training and ELBO masks."""
    import keras
    from keras import ops

    from keras_dualobj import objectives

    fresh = build_model(seed=5)
    draws = {"initial_embedding": fresh.backbone.token_embedding.embeddings}
    draws["ar_rows"] = objectives.sample_ar_rows(
        8, 0.5, keras.random.SeedGenerator(3)
    )
    maskable = batch["maskable_positions"]
    draws["training_masks"] = objectives.sample_masked_positions(
        maskable, keras.random.SeedGenerator(3)
    )[0]
    # What `DualLM.evaluate()` draws for its MD term: masks from `elbo_seed`.
    draws["evaluate_masks"] = fresh.corrupt(
        batch["token_ids"],
        batch["document_ids"],
        keras.random.SeedGenerator(fresh.elbo_seed),
        exact_bound=True,
    )["masked_positions"]
    return {name: ops.convert_to_numpy(value) for name, value in draws.items()}


def main(directory, output):
    import keras

    from keras_dualobj.training.checkpoints import load_training_state

    directory = Path(directory)
    with np.load(directory / BATCH_FILE) as arrays:
        batch = dict(arrays)
    results = {"backend": np.array(keras.backend.backend())}
    loaded = keras.saving.load_model(directory / MODEL_FILE)
    for name, value in score_batch(loaded, batch).items():
        results[f"keras_file/{name}"] = value
    # A freshly built model (other random weights) restored from the checkpoint.
    restored = build_model(seed=99)
    load_training_state(restored, directory / CHECKPOINT)
    for name, value in score_batch(restored, batch).items():
        results[f"checkpoint/{name}"] = value
    for name, value in random_draws(batch).items():
        results[f"draws/{name}"] = value
    np.savez(output, **results)


if __name__ == "__main__":
    main(*sys.argv[1:3])
