"""Data: sources and the catalog, reading, splitting, tokenizing and encoding, the prepared
splits and their batches, and the synthetic long-range problems."""
