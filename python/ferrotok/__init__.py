"""ferrotok: fast, exact tokenizers with a Rust core.

>>> import ferrotok
>>> enc = ferrotok.get_encoding("cl100k_base")
>>> ids = enc.encode("hello world")  # numpy uint32 array
>>> enc.decode(ids)
'hello world'
"""

from ._core import __version__
from .batch import EncodingBatch, TokenBatch
from .embedding import (
    Embedding,
    QuantizationError,
    add_positions,
    positions_from_mask,
    rope,
    sinusoidal_positions,
)
from .encoding import Encoding, get_encoding, list_encodings
from .patches import PatchEmbedding, VectorQuantizer, patchify, tubelets, unpatchify, untubelet
from .sentencepiece import SentencePiece
from .tokenizer import Encoded, Tokenizer
from .train import train_bpe, train_unigram, train_wordpiece

__all__ = [
    "Embedding",
    "Encoded",
    "Encoding",
    "EncodingBatch",
    "PatchEmbedding",
    "QuantizationError",
    "SentencePiece",
    "TokenBatch",
    "Tokenizer",
    "VectorQuantizer",
    "__version__",
    "add_positions",
    "get_encoding",
    "list_encodings",
    "patchify",
    "positions_from_mask",
    "rope",
    "sinusoidal_positions",
    "train_bpe",
    "train_unigram",
    "train_wordpiece",
    "tubelets",
    "unpatchify",
    "untubelet",
]
