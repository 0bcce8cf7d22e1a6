"""Scheduled retraining: one round pulls what earlier rounds stored, re-reads data that has no
pinned hash, reruns what changed, pushes it, and promotes a task's new best model only when it
is proven better than the one in use."""
