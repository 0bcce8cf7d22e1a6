"""Whether this CPU runs a cell in bf16 mixed precision. PyTorch hands a padded LSTM under
bf16 autocast to oneDNN, which builds it only where the CPU has bf16 instructions (AVX-512
BF16, AMX): on an AVX2-only x86-64 (AMD EPYC here) it refuses, "could not create a primitive
descriptor for the LSTM forward propagation primitive", while the GRU and the plain RNN run.
So it is asked, once per cell, with a step as small as one can be."""

from __future__ import annotations

import functools

import torch

from pipeline.errors import one_line

MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


@functools.cache
def cpu_bf16_refusal(cell: str) -> str | None:
    """Why this CPU cannot train `cell` in bf16 mixed precision (PyTorch's words, shortened),
    or None where a forward and backward step runs."""
    torch.manual_seed(0)
    net = MODULES[cell](4, 4, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = net(torch.zeros(2, 3, 4))
        out.float().sum().backward()
    except RuntimeError as err:
        return one_line(str(err)).split(". Run workload")[0]
    return None
