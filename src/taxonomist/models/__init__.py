"""Model families, search, ensembling, evaluation and explanation."""
