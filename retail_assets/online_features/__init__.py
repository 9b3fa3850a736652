"""Online feature tables: what the pipeline publishes for serving to join into requests."""

from retail_assets.online_features.store import OnlineFeaturesResource, OnlineFeatureStore

__all__ = ["OnlineFeatureStore", "OnlineFeaturesResource"]
