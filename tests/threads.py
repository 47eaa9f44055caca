"""One intra-op thread for torch while a block runs (``with one_torch_thread(): ...``).

Tiny models train faster on one thread of 2 shared cores, and a result compared with one
computed in another process (a Ray worker, a killed subprocess started with
OMP_NUM_THREADS=1) must be reduced the same way. The ``one_thread`` fixture (conftest.py)
wraps a test in it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
