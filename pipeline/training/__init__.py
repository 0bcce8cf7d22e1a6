"""Training: one fit of one cell (trainer, callbacks, resume), and the long-range sweep's run."""
