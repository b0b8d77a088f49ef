"""Scores on the member 360: RFM quintiles and a churn probability from the brand's own model."""
