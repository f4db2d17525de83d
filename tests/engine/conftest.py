"""Fixtures the engine tests share: the tiny random model's pipeline, one torch thread."""

import pytest

pytest.register_assert_rewrite("refusals", "serving")     # their asserts explain a failure


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    """The tiny random model on the CPU, loaded once per test module."""
    from engine.pipeline import Pipeline
    return Pipeline.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture
def one_torch_thread():
    """Many small tensor ops: one intra-op thread is far faster on a busy 2-core box.
    A module asks for it with pytestmark = pytest.mark.usefixtures("one_torch_thread")."""
    import torch
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
