"""The dual model's Transformer: one network for causal, bidirectional and prefix-LM use."""

import keras
import numpy as np
from keras_hub.models import Backbone

from keras_dualobj.layers.attention_mask import DualAttentionMask
from keras_dualobj.layers.embedding_head import EmbeddingWithOutputHead
from keras_dualobj.layers.rms_norm import rms_normalization
from keras_dualobj.layers.rotary_embedding import RotaryEmbedding
from keras_dualobj.layers.transformer_block import DualTransformerBlock
from keras_dualobj.models.backbone_arguments import LLAMA_FAMILY_DEFAULTS
from keras_dualobj.models.backbone_arguments import check_backbone_arguments
from keras_dualobj.models.backbone_arguments import rope_scaling_of
from keras_dualobj.models.reference_initialization import apply_reference_initialization


@keras.saving.register_keras_serializable(package="keras_dualobj")
class DualBackbone(Backbone):
    """Decoder-style Transformer whose attention mode is chosen per row.

    The architecture of Samuel & Charpentier (arXiv 2512.14549): token embedding,
    `num_layers` pre-norm blocks (RMSNorm, bias-free multi-head attention with rotary
    position embeddings, SwiGLU feed-forward) and a final RMSNorm. There is no
    architectural difference between the autoregressive and the masked-diffusion use:
    only the attention mask changes. Each row carries a `prefix_length`: positions
    before it attend bidirectionally, positions after it causally, so `0` is a causal
    (AR) row, `>= length` a bidirectional (MD) row and anything between a prefix-LM row.
    `document_ids` keep packed documents from attending to each other in every mode.
    The inputs are keras-hub's, `token_ids` and `padding_mask`, plus optional
    `document_ids` (default: one document) and `prefix_lengths` (default: causal).

    The backbone returns the final hidden states `[batch, length, hidden_dim]`;
    `token_embedding(hidden, reverse=True)` maps them to logits through the output
    head, which is a separate (untied) matrix unless `tie_word_embeddings=True`.
    With `head_projection=True, head_bias=True` the head is the reference
    implementation's: `hidden x hidden` projection (no bias) -> tanh-GELU ->
    vocabulary projection with a bias (`EmbeddingWithOutputHead`); tying then
    shares only the vocabulary matrix. The defaults keep a single linear head.

    Args:
        vocabulary_size: int. Number of token ids.
        num_layers: int. Number of Transformer blocks.
        num_heads: int. Attention heads per block; must divide `hidden_dim`.
        hidden_dim: int. Width of the residual stream.
        intermediate_dim: int. Hidden width of the SwiGLU feed-forward network.
        max_sequence_length: int. Longest sequence the model is meant for (RoPE has no
            hard limit; generation checks against it). Defaults to `2048`.
        rope_max_wavelength: float. RoPE base θ. Defaults to `10000` (the paper: 160000).
        layer_norm_epsilon: float. RMSNorm epsilon. Defaults to `1e-7` (the paper's).
        dropout: float. Residual dropout rate. Defaults to `0`.
        tie_word_embeddings: bool. Share the input embedding with the output head.
            Defaults to `False` (the paper's untied head).
        initializer_range: float. Standard deviation of the normal initializer
            (`initialization="normal"`).
        head_projection: bool. Add the reference head's `hidden x hidden` projection
            and tanh-GELU before the vocabulary projection. Defaults to `False`.
        head_bias: bool. Give the vocabulary projection a bias. Defaults to `False`.
        attention_norm_affine: bool. Learned scale in each attention RMSNorm.
        feed_forward_norm_affine: bool. Learned scale in each feed-forward RMSNorm.
        head_norm_affine: bool. Learned scale in the final RMSNorm. The three norm
            options default to `True` (the reference's `*_pre_norm_affine`).
        initialization: `"normal"` (every matrix from a normal with
            `initializer_range`) or `"reference"` (the reference implementation's
            scheme, see `apply_reference_initialization`). Defaults to `"normal"`.
        num_key_value_heads: int dividing `num_heads`, or `None` (= `num_heads`,
            multi-head attention). Fewer is grouped-query attention (Llama 3,
            Mistral, Qwen 2), in training, decoding and every KV cache.
        query_key_value_bias: bool. Biases on the query, key and value
            projections (Qwen 2). Defaults to `False`.
        rope_scaling_factor: float. Linear RoPE scaling (frequencies divided by
            it; keras-hub's Qwen `rope_scaling_factor`). Defaults to `1.0`.
        rope_frequency_adjustment_factor, rope_low_freq_factor,
            rope_high_freq_factor, rope_pretraining_sequence_length: Llama 3.1's
            RoPE scaling, keras-hub's `Llama3Backbone` arguments of these names:
            all four or none (the default).
        dtype: string or `keras.DTypePolicy`, the computation and weight dtype.

    Example:
    >>> import numpy as np
    >>> backbone = DualBackbone(
    ...     vocabulary_size=300, num_layers=2, num_heads=2, hidden_dim=32,
    ...     intermediate_dim=64, max_sequence_length=64)
    >>> inputs = {
    ...     "token_ids": np.ones((2, 16), "int32"),
    ...     "document_ids": np.zeros((2, 16), "int32"),
    ...     "prefix_lengths": np.array([0, 16], "int32"),  # causal row, bidirectional row
    ... }
    >>> tuple(backbone(inputs).shape)
    (2, 16, 32)

    keras-hub's inputs work too (`padding_mask` false on padding; rows causal):
    >>> tuple(backbone({"token_ids": np.ones((2, 4), "int32"),
    ...                 "padding_mask": np.array([[1, 1, 1, 0]] * 2)}).shape)
    (2, 4, 32)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length=2048,
        rope_max_wavelength=10000,
        layer_norm_epsilon=1e-7,
        dropout=0.0,
        tie_word_embeddings=False,
        initializer_range=0.02,
        head_projection=False,
        head_bias=False,
        attention_norm_affine=True,
        feed_forward_norm_affine=True,
        head_norm_affine=True,
        initialization="normal",
        num_key_value_heads=None,
        query_key_value_bias=False,
        rope_scaling_factor=1.0,
        rope_frequency_adjustment_factor=None,
        rope_low_freq_factor=None,
        rope_high_freq_factor=None,
        rope_pretraining_sequence_length=None,
        dtype=None,
        **kwargs,
    ):
        arguments = dict(locals())
        check_backbone_arguments(arguments)
        head_dim = hidden_dim // num_heads
        rope_scaling = rope_scaling_of(arguments)

        # === Layers ===
        self._make_layers(arguments, head_dim, rope_scaling)

        # === Functional Model ===
        # keras-hub's inputs, `token_ids` and `padding_mask`, plus the dual model's own;
        # `__call__` fills in the ones a caller leaves out (`complete_inputs`).
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        document_ids = keras.Input(shape=(None,), dtype="int32", name="document_ids")
        prefix_lengths = keras.Input(shape=(), dtype="int32", name="prefix_lengths")
        attention_mask = self.attention_mask_layer(document_ids, prefix_lengths, padding_mask)
        rotary_tables = self.rotary_embedding(token_ids)
        hidden_states = self.token_embedding(token_ids)
        for block in self.transformer_layers:
            hidden_states = block(
                hidden_states, attention_mask=attention_mask, rotary_tables=rotary_tables
            )
        hidden_states = self.final_norm(hidden_states)
        super().__init__(
            inputs={
                "token_ids": token_ids,
                "padding_mask": padding_mask,
                "document_ids": document_ids,
                "prefix_lengths": prefix_lengths,
            },
            outputs=hidden_states,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        for name, value in arguments.items():
            if name not in ("self", "dtype", "kwargs", "__class__"):
                setattr(self, name, value)
        if initialization == "reference":
            apply_reference_initialization(self)

    def _make_layers(self, arguments, head_dim, rope_scaling):
        """The backbone's layers, from its constructor's `arguments`."""
        a, dtype = arguments, arguments["dtype"]
        initializer = keras.initializers.RandomNormal(stddev=a["initializer_range"])
        embedding_arguments = dict(
            input_dim=a["vocabulary_size"],
            output_dim=a["hidden_dim"],
            tie_weights=a["tie_word_embeddings"],
            embeddings_initializer=initializer,
            dtype=dtype,
            name="token_embedding",
        )
        if a["head_projection"] or a["head_bias"]:
            self.token_embedding = EmbeddingWithOutputHead(
                head_projection=a["head_projection"],
                head_bias=a["head_bias"],
                head_projection_initializer=initializer,
                **embedding_arguments,
            )
        else:
            # The plain layer keeps the weight names of models saved before the
            # head options existed.
            self.token_embedding = keras.layers.ReversibleEmbedding(**embedding_arguments)
        self.attention_mask_layer = DualAttentionMask(dtype=dtype, name="attention_mask")
        # The cos/sin tables, once per forward pass for every block.
        self.rotary_embedding = RotaryEmbedding(
            head_dim=head_dim,
            max_wavelength=a["rope_max_wavelength"],
            scaling=rope_scaling,
            dtype=dtype,
            name="rotary_embedding",
        )
        block_arguments = {
            name: a[name]
            for name in ("num_heads", "intermediate_dim", "rope_max_wavelength",
                         "layer_norm_epsilon", "dropout", "attention_norm_affine",
                         "feed_forward_norm_affine", "num_key_value_heads",
                         "query_key_value_bias")
        }
        self.transformer_layers = [
            DualTransformerBlock(
                head_dim=head_dim,
                kernel_initializer=initializer,
                rope_scaling=rope_scaling,
                dtype=dtype,
                name=f"transformer_layer_{i}",
                **block_arguments,
            )
            for i in range(a["num_layers"])
        ]
        self.final_norm = rms_normalization(
            a["head_norm_affine"], a["layer_norm_epsilon"], dtype=dtype, name="final_norm"
        )

    # The inputs a caller leaves out are filled in on every path into the graph: a call,
    # its output spec, and `call` itself (JAX's compiled predict calls it directly).
    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(complete_inputs(inputs), *args, **kwargs)

    def call(self, inputs, *args, **kwargs):
        return super().call(complete_inputs(inputs), *args, **kwargs)

    def compute_output_spec(self, inputs, *args, **kwargs):
        return super().compute_output_spec(complete_inputs(inputs), *args, **kwargs)

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    @property
    def key_value_heads(self):
        """Key/value heads per block: `num_key_value_heads`, else `num_heads`."""
        return self.num_key_value_heads or self.num_heads

    def cache_shape(self, batch_size, max_length):
        """The KV cache's shape: `[batch, num_layers, 2, max_length, kv_heads, head_dim]`.

        Example:
        >>> DualBackbone(64, 2, 4, 32, 48, num_key_value_heads=2).cache_shape(3, 10)
        (3, 2, 2, 10, 2, 8)
        """
        return (batch_size, self.num_layers, 2, max_length, self.key_value_heads,
                self.head_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "max_sequence_length": self.max_sequence_length,
                "rope_max_wavelength": self.rope_max_wavelength,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
                "tie_word_embeddings": self.tie_word_embeddings,
                "initializer_range": self.initializer_range,
                "head_projection": self.head_projection,
                "head_bias": self.head_bias,
                "attention_norm_affine": self.attention_norm_affine,
                "feed_forward_norm_affine": self.feed_forward_norm_affine,
                "head_norm_affine": self.head_norm_affine,
                "initialization": self.initialization,
                **{name: getattr(self, name) for name in LLAMA_FAMILY_DEFAULTS},
            }
        )
        return config

    # === Distribution (keras.distribution) ===

    @staticmethod
    def get_layout_map(
        device_mesh,
        model_parallel_dim_name="model",
        data_parallel_dim_name="batch",
        backbone_config=None,
    ):
        """A `keras.distribution.LayoutMap` sharding the backbone's weights.

        keras-hub's layout (its Gemma and Llama backbones): the token embedding,
        the output head, the attention heads and the SwiGLU hidden width are split
        over the model axis, and each matrix's other (hidden) dimension over the
        data axis, so a `batch x model` mesh holds every large matrix once across
        all its devices. RMSNorm scales are replicated. Variable paths and shapes:

        | variable | shape | layout |
        |---|---|---|
        | `token_embedding/embeddings` | vocab x hidden | model, batch |
        | `token_embedding/reverse_embeddings` | hidden x vocab | batch, model |
        | `token_embedding/output_bias` | vocab | model |
        | `token_embedding/head_projection/kernel` | hidden x hidden | batch, model |
        | `*/attention/{query,key,value}/kernel` | hidden x (kv) heads x head_dim | batch, model, - |
        | `*/attention/attention_output/kernel` | heads x head_dim x hidden | model, -, batch |
        | `*/feed_forward/{gate,up}/kernel` | hidden x intermediate | batch, model |
        | `*/feed_forward/down/kernel` | intermediate x hidden | model, batch |

        JAX needs every sharded dimension divisible by its mesh axis. With a
        `backbone_config` (a `get_config()` dict or a preset's `"backbone"`) a
        matrix whose preferred layout does not divide swaps its two axes (the
        paper's intermediate width 3,554 over a 4-way model axis shards the
        hidden width instead) and, failing that too, replicates the dimension;
        without one the table holds as is.

        Args:
            device_mesh: a `keras.distribution.DeviceMesh` with both axis names.
            model_parallel_dim_name: str. Mesh axis the weights are split over.
            data_parallel_dim_name: str. Mesh axis the batch is split over.
            backbone_config: optional dict, see above.

        Returns:
            A `keras.distribution.LayoutMap` for `keras.distribution.ModelParallel`.

        Example:
        >>> import keras
        >>> mesh = keras.distribution.DeviceMesh((1, 1), ("batch", "model"), ["cpu:0"])
        >>> layout_map = DualBackbone.get_layout_map(mesh)
        >>> layout_map["transformer_layer_0/feed_forward/down/kernel"].axes
        ('model', 'batch')
        """
        from keras_dualobj.models.layouts import backbone_layout_map

        return backbone_layout_map(
            device_mesh, model_parallel_dim_name, data_parallel_dim_name, backbone_config
        )

    # === Presets (keras_dualobj.models.presets) ===

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A backbone from a named preset of `keras_dualobj.models.presets`.

        Our presets are architectures only (fresh weights), so `load_weights` has no
        effect for them; keyword arguments override the preset's config (e.g.
        `vocabulary_size` to match a tokenizer). Any other `preset` (a saved preset
        directory, a Kaggle or Hugging Face handle) is loaded by keras-hub's
        `Backbone.from_preset`.

        Example:
        >>> backbone = DualBackbone.from_preset("tiny", vocabulary_size=300)
        >>> backbone.num_layers, backbone.vocabulary_size
        (2, 300)
        """
        from keras_dualobj.models.presets import PRESETS
        from keras_dualobj.models.presets import get_preset

        if preset in PRESETS:
            config = get_preset(preset)["backbone"]
            config.update(kwargs)
            return cls(**config)
        if isinstance(preset, str) and "/" not in preset and ":" not in preset:
            raise ValueError(
                f"Unknown preset {preset!r}; accepted are {list(PRESETS)}, a saved preset "
                "directory, or a Kaggle / Hugging Face handle."
            )
        return super().from_preset(preset, load_weights=load_weights, **kwargs)


def complete_inputs(inputs):
    """The backbone's four inputs from those given: token ids alone or a dict with
    `token_ids` and any of `padding_mask` (default: no padding), `document_ids` (one
    document) and `prefix_lengths` (default 0: causal rows).

    Example:
    >>> import numpy as np
    >>> sorted(complete_inputs(np.ones((2, 3), "int32")))
    ['document_ids', 'padding_mask', 'prefix_lengths', 'token_ids']
    """
    if not isinstance(inputs, dict):
        inputs = {"token_ids": inputs}
    if len(inputs) == 4:
        return inputs
    token_ids = inputs["token_ids"]
    # NumPy beside NumPy inputs: Keras refuses a call that mixes arrays and tensors.
    xp = np if isinstance(token_ids, (np.ndarray, list, tuple)) else keras.ops
    token_ids = np.asarray(token_ids) if xp is np else token_ids
    defaults = {
        "padding_mask": lambda: xp.ones_like(token_ids, dtype="int32"),
        "document_ids": lambda: xp.zeros_like(token_ids, dtype="int32"),
        "prefix_lengths": lambda: xp.zeros_like(token_ids[:, 0], dtype="int32"),
    }
    return {**{name: make() for name, make in defaults.items() if name not in inputs}, **inputs}
