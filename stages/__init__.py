"""One thin module per DVC stage; each reads params.yaml and calls into `pipeline`."""
