"""Sentence encoders behind one interface, with an on-disk cache keyed by text hash."""

from taxonomist.embed.cache import EmbeddingCache
from taxonomist.embed.encoders import (
    ENCODERS,
    Encoder,
    encoder_for_language,
    get_encoder,
)
from taxonomist.embed.transformer import SentenceEmbedder

__all__ = [
    "ENCODERS",
    "EmbeddingCache",
    "Encoder",
    "SentenceEmbedder",
    "encoder_for_language",
    "get_encoder",
]
