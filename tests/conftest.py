"""Shared fixtures: POT backends (numpy, torch CPU, torch CUDA when present)."""
import numpy as np
import pytest
import torch
from ot.backend import NumpyBackend, TorchBackend

BACKENDS = ["numpy", "torch"]
if torch.cuda.is_available():
    BACKENDS.append("torch-cuda")


@pytest.fixture(params=BACKENDS)
def nx(request):
    """A POT backend; ``nx.test_device`` tells where its arrays live."""
    backend = NumpyBackend() if request.param == "numpy" else TorchBackend()
    backend.test_device = "cuda" if request.param == "torch-cuda" else "cpu"
    return backend


def to_backend(nx, *arrays, dtype=np.float64):
    """numpy arrays → arrays of backend ``nx`` (on its test device) in ``dtype``."""
    out = []
    for x in arrays:
        x = np.asarray(x, dtype=dtype)
        if isinstance(nx, TorchBackend):
            out.append(torch.as_tensor(x, device=nx.test_device))
        else:
            out.append(x)
    return out if len(out) > 1 else out[0]


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny problems, the caller's count restored after.

    Such modules run thousands of tiny torch ops; with 2 threads each op pays a
    synchronisation floor on this project's 2-core machines (SPEC section 2). Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
