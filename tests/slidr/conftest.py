import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are tiny: one intra-op thread is faster than several (and than contended cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
