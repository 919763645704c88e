"""Shared fixtures. The shared test losses are plain functions in ``tests/losses.py``."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny tensors: a second thread only adds OpenMP waits,
    and many of them on a busy machine. Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def outcome(request):
    """The reduced run of the study a test module names in ``STUDY``, run once per module."""
    from optzoo import studies

    return studies.get(request.module.STUDY).run(True)


@pytest.fixture
def published_summary(request, outcome, tmp_path) -> dict:
    """The module's study published from its reduced run: its summary.json, validated."""
    from optzoo import studies
    from optzoo.studies.base import publish, validate_summary

    study = studies.get(request.module.STUDY)
    summary = json.loads(
        (publish(study, outcome, tmp_path, reduced=True) / "summary.json").read_text()
    )
    validate_summary(summary)
    return summary
