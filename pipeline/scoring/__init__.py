"""Scoring: what a prediction is worth and how sure a comparison is. Metrics (accuracy, F1,
entity spans), each test example's score as a fraction (for resampling), the metric a task
ranks by, and the statistics (bootstrap, t-tests, intervals). Below both the report and the
retraining round's promotion, which judge with the same tests; it imports no PyTorch."""
