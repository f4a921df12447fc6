"""ferrotok: fast, exact tokenizers with a Rust core.

>>> import ferrotok
>>> enc = ferrotok.get_encoding("cl100k_base")
>>> ids = enc.encode("hello world")  # numpy uint32 array
>>> enc.decode(ids)
'hello world'
"""

from ._core import __version__
from .batch import EncodingBatch, TokenBatch
from .encoding import Encoding, get_encoding, list_encodings
from .tokenizer import Encoded, Tokenizer

__all__ = [
    "Encoded",
    "Encoding",
    "EncodingBatch",
    "TokenBatch",
    "Tokenizer",
    "__version__",
    "get_encoding",
    "list_encodings",
]
