"""The attention mask of a dual model: per-row mode plus packed-document boundaries."""

import keras
from keras import ops


def dual_attention_mask(document_ids, prefix_lengths, padding_mask=None):
    """Which keys each query may attend to, `[batch, length, length]` bool.

    One integer per row selects the attention mode: query `i` sees key `j` when both lie
    in the same packed document and either `j <= i` (causal) or `j < prefix_length`
    (bidirectional over the prefix). So `prefix_length = 0` is causal (AR rows),
    `prefix_length >= length` is fully bidirectional (MD rows) and anything between is
    a prefix-LM row. Every query always sees itself, so no softmax row is empty.
    Padding (`padding_mask` false, keras-hub's convention) is a document of its own:
    no text position attends to it.

    Args:
        document_ids: int tensor `[batch, length]`; equal ids mark one document.
        prefix_lengths: int tensor `[batch]`.
        padding_mask: optional bool or 0/1 tensor `[batch, length]`, true on tokens.

    Returns:
        bool tensor `[batch, length, length]` indexed `[row, query, key]`.

    Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> mask = dual_attention_mask(np.array([[0, 0, 0, 1]]), np.array([2]))
    >>> ops.convert_to_numpy(mask)[0].astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]
    """
    if padding_mask is not None:
        document_ids = ops.where(ops.cast(padding_mask, "bool"), document_ids, -1)
    length = ops.shape(document_ids)[1]
    positions = ops.arange(length, dtype="int32")
    causal = positions[None, :, None] >= positions[None, None, :]
    in_prefix = positions[None, None, :] < ops.cast(prefix_lengths, "int32")[:, None, None]
    same_document = ops.equal(document_ids[:, :, None], document_ids[:, None, :])
    return ops.logical_and(same_document, ops.logical_or(causal, in_prefix))


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualAttentionMask(keras.layers.Layer):
    """Layer form of `dual_attention_mask`, for functional graphs.

    Example:
    >>> import numpy as np
    >>> tuple(DualAttentionMask()(np.zeros((2, 5), "int32"), np.zeros((2,), "int32")).shape)
    (2, 5, 5)
    """

    def call(self, document_ids, prefix_lengths, padding_mask=None):
        return dual_attention_mask(document_ids, prefix_lengths, padding_mask)

    def compute_output_spec(self, document_ids, prefix_lengths, padding_mask=None):
        batch_size, length = document_ids.shape
        return keras.KerasTensor((batch_size, length, length), dtype="bool")
