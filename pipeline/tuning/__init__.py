"""Tuning before comparing: an Optuna study per task and cell with the same budget for every
cell (`study`), and the record of its best settings that the train stage applies
(`settings`)."""
