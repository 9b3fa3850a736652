"""Dynamic pricing (issue 14, in progress): the demand response model with a monotone own-price
constraint (`response.py`), the optimizer over a price grid (`optimizer.py`), the guardrails
every recommended price must respect with the trace of which rule bound it (`guardrails.py`),
and the evaluation of pricing policies against the generator's truth (`truth.py`)."""
