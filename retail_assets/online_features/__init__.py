"""Online feature tables: what the pipeline publishes for serving to join into requests."""

# Feature-set names: the store folder and the decision-log artifact `features/<name>`.
DEMAND_FEATURE_SET = "demand_forecast"
FRAUD_FEATURE_SET = "payment_fraud"
RECOMMEND_FEATURE_SET = "recommendations"
PRICING_FEATURE_SET = "pricing"
