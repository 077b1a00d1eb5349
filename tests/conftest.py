"""Shared test setup: every test runs torch on one thread (steadier times on a busy 2-core
machine, and bit-reproducible float results), restoring the previous count afterwards."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
