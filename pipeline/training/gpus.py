"""One GPU per fit when several fits share a machine (DVC queue workers, CI jobs on one box):
each fit takes the first GPU that no other fit on this machine holds, by an exclusive lock on a
file per GPU, and trains on that one; the lock goes with the process, even a killed one. With
one GPU or none, or CUDA_VISIBLE_DEVICES set by the user, nothing is claimed. More fits than
GPUs: the extra ones wait for a free GPU (a 3-cell x 5-seed study on 8 GPUs runs 8 at a time).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCKS = Path(tempfile.gettempdir()) / "rnnbench-gpus"


@contextmanager
def claim_gpu(count: int, folder: Path = LOCKS, poll: float = 1.0) -> Iterator[int | None]:
    """Hold one of `count` GPUs for the duration: its index, or None where nothing is
    claimed (fewer than two GPUs, or the user chose with CUDA_VISIBLE_DEVICES)."""
    if count < 2 or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        yield None
        return
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            handle = open(folder / f"gpu-{index}.lock", "w")  # noqa: SIM115 (held below)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                handle.write(str(os.getpid()))
                handle.flush()
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll)  # every GPU is busy: wait for one
