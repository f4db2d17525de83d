"""runtime/discovery.py on its own (standard library, no Blender): which Python runs the
engine, searched once on a background thread and answered from a cache."""

from __future__ import annotations

import importlib.util
import sys
import threading

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def discovery():
    spec = importlib.util.spec_from_file_location("kiln_discovery",
                                                  ROOT / "runtime" / "discovery.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                   # dataclasses look the module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def no_torch(tmp_path) -> str:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


def test_search_picks_the_first_candidate_with_torch(discovery, venv_python, no_torch,
                                                     tmp_path):
    candidates = [("fake", no_torch), ("empty", ""), ("gone", str(tmp_path / "nope")),
                  ("repo", venv_python)]
    found = discovery.search(candidates, configured=False, root=str(ROOT))
    assert (found.state, found.python, found.message) == (discovery.FOUND, venv_python, "repo")
    missing = discovery.search([("fake", no_torch)], configured=False, root=str(ROOT))
    assert missing.state == discovery.MISSING and missing.python is None
    assert "Set up engine" in missing.message


def test_a_configured_python_has_no_fallback(discovery, venv_python, no_torch):
    found = discovery.search([("configured", no_torch), ("repo", venv_python)],
                             configured=True, root=str(ROOT))
    assert found.state == discovery.MISSING
    assert "cannot import torch" in found.message and no_torch in found.message


def test_status_answers_at_once_and_searches_in_the_background(discovery, venv_python,
                                                               monkeypatch):
    """The caller (a panel's draw, an operator's poll) never waits for a check."""
    release, calls = threading.Event(), []

    def slow_check(python, root, timeout=discovery.CHECK_TIMEOUT):
        calls.append(python)
        release.wait(10)
        return python == venv_python

    monkeypatch.setattr(discovery, "check_torch", slow_check)
    finder = discovery.Discovery()
    assert finder.current().state == discovery.UNKNOWN
    candidates = [("repo", venv_python)]
    first = finder.status(candidates, False, str(ROOT))
    assert first.state == discovery.SEARCHING and first.message
    assert finder.status(candidates, False, str(ROOT)).state == discovery.SEARCHING
    release.set()
    done = finder.wait(10)
    assert done.found and done.python == venv_python
    assert finder.status(candidates, False, str(ROOT)) == done      # cached: no new search
    assert calls == [venv_python]


def test_forget_searches_again_and_drops_a_late_answer(discovery, venv_python, no_torch,
                                                        monkeypatch):
    release, calls = threading.Event(), []
    real = discovery.check_torch

    def gated(python, root, timeout=discovery.CHECK_TIMEOUT):
        calls.append(python)
        release.wait(10)
        return real(python, root, timeout)

    monkeypatch.setattr(discovery, "check_torch", gated)
    finder = discovery.Discovery()
    finder.status([("fake", no_torch)], False, str(ROOT))
    finder.forget()                                   # e.g. the preference changed
    release.set()
    finder.wait(10)
    assert finder.current().state == discovery.UNKNOWN      # the old answer is dropped
    assert finder.status([("repo", venv_python)], False, str(ROOT), wait=True).found
    assert calls == [no_torch, venv_python]


def test_new_candidates_start_a_new_search(discovery, venv_python, no_torch):
    finder = discovery.Discovery()
    assert finder.status([("fake", no_torch)], True, str(ROOT), wait=True).state \
        == discovery.MISSING
    assert finder.status([("repo", venv_python)], True, str(ROOT), wait=True).found
