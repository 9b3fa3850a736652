"""Recommendations: candidate sources (`candidates.py`), the tables they are computed from as of
a time (`features.py`), the one per-query candidate and feature implementation training and
serving share (`online.py`), the LambdaRank ranker (`train.py`), its offline evaluation
(`evaluate.py`), business rules (`rules.py`) and the model family on the shared lifecycle
(`family.py`). Everything is computed as of a time from the clickstream, so an evaluation
never sees what happened after it. `online.py` and `rules.py` are runtime only: serving
imports them without the training stack."""
