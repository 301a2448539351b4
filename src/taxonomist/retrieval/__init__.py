"""Find the passage that answers a question: QA corpora, retrieval indexes, evaluation.

This first part holds the corpus (SQuAD JSON, CSV or Parquet, validated) and a BM25 index
with the quality test; dense and hybrid indexes, Qdrant storage, the API and the UI page are
still to come (issue 5).
"""

from taxonomist.retrieval.bm25 import BM25Index
from taxonomist.retrieval.corpus import QADataset, load_qa
from taxonomist.retrieval.evaluate import evaluate

__all__ = ["BM25Index", "QADataset", "evaluate", "load_qa"]
