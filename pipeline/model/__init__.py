"""Models: the exact recurrent encoder, the networks built on it, the CRF, and the
LightningModule that trains a built network."""
