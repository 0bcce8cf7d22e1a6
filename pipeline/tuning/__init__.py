"""Tuning before comparing: an Optuna study per task and cell with the same budget for every
cell (`study`), the tune stage's step that runs it only when tuning is on (`tune`), and the
record of its best settings that the train stage applies (`settings`)."""
