"""Models: the exact recurrent encoder, the networks built on it, the CRF, the LightningModule
that trains a built network, and the record (train.json) that rebuilds a trained one."""
