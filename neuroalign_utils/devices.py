"""Where torch runs: the one ``device`` parameter of every chapter and function that runs torch.

:func:`resolve_device` turns a ``device`` argument into a :class:`torch.device` for every caller:
``"auto"`` picks a CUDA GPU, then Apple's MPS, then the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and
``"mps"`` (or a :class:`torch.device`) ask for one, and asking for one that this machine lacks is an
error that names the parameter and the accepted values.

Resolving a CUDA device sets PyTorch's CUDA switches explicitly (:func:`configure_cuda`), so that a
run does not depend on whatever another library set before:

- TF32 off for float32 matrix products and convolutions: float32 work (evaluation, features,
  FactorTopy) keeps float32's precision and agrees with the CPU to rounding. Where lower precision
  pays, it is asked for explicitly (mixed precision in V1T training, see
  :func:`neuroalign_utils.v1t.training.resolve_precision`).
- cuDNN autotuning on (``benchmark=True``, ``deterministic=False``): batches have a few fixed shapes,
  so the fastest convolution algorithm is chosen once per shape. GPU runs therefore agree with each
  other and with the CPU in their metrics (within seed noise), not bit for bit.
"""

from __future__ import annotations

import contextlib

import torch

#: The device names :func:`resolve_device` accepts (plus ``"cuda:<index>"``).
DEVICES = ("auto", "cpu", "cuda", "mps")


def _accepted() -> str:
    return "'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device="auto", name: str = "device") -> torch.device:
    """The :class:`torch.device` that ``device`` asks for, checked against this machine.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"``: a CUDA GPU if one is available, else Apple's MPS, else the CPU. ``"cpu"``,
        ``"cuda"`` (the current CUDA device), ``"cuda:N"`` or ``"mps"``: that device.
    name : str
        The caller's parameter name, used in error messages.

    Returns
    -------
    torch.device
        ``cuda`` devices carry their index. Resolving one sets the CUDA switches (:func:`configure_cuda`).

    Raises
    ------
    ValueError
        For an unknown value, or a device this machine does not have (e.g. ``"cuda"`` without a GPU).
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        if torch.cuda.is_available():
            resolved = torch.device("cuda", torch.cuda.current_device())
        elif _mps_available():
            resolved = torch.device("mps")
        else:
            resolved = torch.device("cpu")
    else:
        try:
            resolved = device if isinstance(device, torch.device) else torch.device(str(device).strip().lower())
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"'{name}' must be {_accepted()}; {device!r} was provided.") from None
        if resolved.type not in DEVICES:
            raise ValueError(f"'{name}' must be {_accepted()}; {device!r} was provided.")
        if resolved.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(
                    f"'{name}'={device!r} asks for a CUDA GPU, but torch.cuda.is_available() is False "
                    f"on this machine; use 'auto' or 'cpu' (accepted: {_accepted()})."
                )
            index = torch.cuda.current_device() if resolved.index is None else resolved.index
            if index >= torch.cuda.device_count():
                raise ValueError(
                    f"'{name}'={device!r} asks for CUDA device {index}, but this machine has "
                    f"{torch.cuda.device_count()}; accepted: {_accepted()}."
                )
            resolved = torch.device("cuda", index)
        elif resolved.type == "mps" and not _mps_available():
            raise ValueError(
                f"'{name}'={device!r} asks for Apple's MPS, which is not available on this machine; "
                f"use 'auto' or 'cpu' (accepted: {_accepted()})."
            )
    if resolved.type == "cuda":
        configure_cuda()
    return resolved


def configure_cuda() -> None:
    """Set PyTorch's CUDA switches explicitly (see the module docstring for why these values)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = False


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (or buffers); the CPU for a module without either."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def fork_rng(device: torch.device):
    """:func:`torch.random.fork_rng` over the CPU generator and ``device``'s own (CUDA or MPS).

    Seeding inside it seeds the generator that the device's random operations (dropout, noise) draw
    from, and the caller's generator states are restored afterwards.
    """
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    if device.type == "cuda":
        return torch.random.fork_rng(devices=[device.index or 0], device_type="cuda")
    return _fork_mps()


@contextlib.contextmanager
def _fork_mps():
    state = torch.mps.get_rng_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            torch.mps.set_rng_state(state)


def describe_device(device: torch.device) -> str:
    """Words for where a run ran: "the CPU", "a CUDA GPU (NVIDIA H200)", "Apple's MPS"."""
    if device.type == "cuda":
        return f"a CUDA GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple's MPS GPU"
    return "the CPU"
