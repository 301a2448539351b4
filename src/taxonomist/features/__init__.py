"""Feature transformers (scikit-learn estimators) and the block builder."""

from taxonomist.features.build import BlockSpec, FeatureBlocks, block_specs, stack_blocks
from taxonomist.features.categorical import CountEncoder
from taxonomist.features.stacking import OutOfFoldDecision
from taxonomist.features.text import HashedTfidfVectorizer

__all__ = [
    "BlockSpec",
    "CountEncoder",
    "FeatureBlocks",
    "HashedTfidfVectorizer",
    "OutOfFoldDecision",
    "block_specs",
    "stack_blocks",
]
