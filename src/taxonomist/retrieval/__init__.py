"""Find the passage that answers a question.

QA corpora (SQuAD JSON or tables, validated), retrieval models (BM25, dense, hybrid) stored in
Qdrant under an id, the quality test and the latency benchmark.
"""

from taxonomist.retrieval.corpus import QADataset, load_qa
from taxonomist.retrieval.evaluate import evaluate, latency
from taxonomist.retrieval.model import RetrievalModel, RetrievalParams, build_model
from taxonomist.retrieval.store import EdgeStore, ServerStore, Store, open_store
from taxonomist.retrieval.text import Preprocessing

__all__ = [
    "EdgeStore",
    "Preprocessing",
    "QADataset",
    "RetrievalModel",
    "RetrievalParams",
    "ServerStore",
    "Store",
    "build_model",
    "evaluate",
    "latency",
    "load_qa",
    "open_store",
]
