"""Recommendations (issue 13, in progress): candidate sources and the offline evaluation the
ranker will be gated on. Everything here is computed as of a split time from the clickstream,
so an evaluation never sees what happened after it."""
