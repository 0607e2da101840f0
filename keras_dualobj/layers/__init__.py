"""Building blocks of the dual Transformer."""

from keras_dualobj.layers.attention_mask import DualAttentionMask
from keras_dualobj.layers.attention_mask import dual_attention_mask
from keras_dualobj.layers.dual_attention import DualAttention
from keras_dualobj.layers.swiglu import SwiGLUFeedForward
from keras_dualobj.layers.transformer_block import DualTransformerBlock
from keras_dualobj.layers.embedding_head import EmbeddingWithOutputHead
from keras_dualobj.layers.rms_norm import UnscaledRMSNormalization
from keras_dualobj.layers.rotary_embedding import RotaryEmbedding
