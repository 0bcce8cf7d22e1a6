"""Evaluation: test-split scores and predictions of each trained cell, and the diagnostics."""
