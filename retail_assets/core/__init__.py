"""The core every versioned thing shares: an artifact store, one decision log, one gate and a
serving slot. No Dagster, no training libraries: Dagster assets call it, the serving app
imports it.

* `store.ArtifactStore`: stage -> validate -> publish atomically; role pointers (champion,
  challenger) and the rollout (off / shadow / canary share) in one file; prune.
* `decisions.DecisionLog`: the one append-only log of every publish, promotion, refusal,
  rollback and rollout change, with its evidence.
* `gate`: rules (absolute floors, beat the best baseline by a margin, no regression against
  the incumbent beyond a tolerance, overall and per segment with minimum support) evaluated
  into one result table that the UI, the CLI and the admin API show.
* `slot.Slot`: serving's hot-swap slot: poll, load + validate + self-test beside the serving
  version, swap by reference, degraded with a reason.

Model bundles, online feature tables, the search index, its encoder and embeddings, the RAG
index and prompt versions are all instances of these; a new kind (the recommender, the
pricing model, monitoring references) is one more.
"""
