"""Dynamic pricing (issue 14, in progress): the guardrails every recommended price must
respect, with the trace of which rule bound it (`guardrails.py`)."""
