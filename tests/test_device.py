"""Device selection."""

from __future__ import annotations

import pytest
import torch

from utilities.device import select_device


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_this_machine_uses_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert select_device() == (torch.device("cpu"), "cpu")
    assert select_device("cpu") == (torch.device("cpu"), "cpu")


def test_cpu_only(cpu_only):
    assert select_device() == (torch.device("cpu"), "cpu")
    assert select_device(allow_mps=True) == (torch.device("cpu"), "cpu")


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_unavailable_device_asked_by_name(cpu_only, name):
    with pytest.raises(RuntimeError, match=f"'{name}'.*not available"):
        select_device(name)


@pytest.mark.parametrize("name", ["gpu", "CUDA", "tpu", ""])
def test_unknown_device_name(name):
    with pytest.raises(ValueError, match=f"Unknown device {name!r}") as caught:
        select_device(name)
    assert "['cuda', 'mps', 'cpu']" in str(caught.value)


def test_cuda_preferred_when_available(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device() == (torch.device("cuda"), "gpu")
    assert select_device(allow_mps=True) == (torch.device("cuda"), "gpu")
    assert select_device("cuda") == (torch.device("cuda"), "gpu")
    assert select_device("cpu") == (torch.device("cpu"), "cpu")


def test_mps_only_when_allowed_or_named(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device() == (torch.device("cpu"), "cpu")
    assert select_device(allow_mps=True) == (torch.device("mps"), "mps")
    assert select_device("mps") == (torch.device("mps"), "mps")


def test_use_device_sets_where_fit_trains_and_auto_hands_back_to_select_device():
    from utilities.device import default_device, use_device

    try:
        assert use_device("cpu") == (torch.device("cpu"), "cpu")
        assert default_device() == (torch.device("cpu"), "cpu")
        use_device("auto")
        assert default_device() == select_device()
    finally:
        use_device("auto")


def test_use_device_refuses_an_unknown_name_saying_what_it_expected():
    from utilities.device import use_device

    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        use_device("tpu")
