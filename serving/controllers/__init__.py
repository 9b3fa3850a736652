"""HTTP controllers, one per domain; each takes the shared `ServingState` by injection."""
