"""GPU short names (as the OpenWeights CLI takes them: L40, H100S, ...) and what each cloud
calls that GPU, so `ow --gpu L40` means the same card on every provider.

RunPod names are its gpuTypeIds; Vast names are its `gpu_name` values. A provider missing
from a row has no such card to offer.
"""

from __future__ import annotations

# short name -> {provider: that provider's name for the GPU}
GPUS: dict[str, dict[str, str]] = {
    "L40": {"runpod": "NVIDIA L40", "vast": "L40"},
    "L40S": {"runpod": "NVIDIA L40S", "vast": "L40S"},
    "L4": {"runpod": "NVIDIA L4", "vast": "L4"},
    "A30": {"runpod": "NVIDIA A30", "vast": "A30"},
    "A40": {"runpod": "NVIDIA A40", "vast": "A40"},
    "A100": {"runpod": "NVIDIA A100 80GB PCIe", "vast": "A100 PCIE"},
    "A100S": {"runpod": "NVIDIA A100-SXM4-80GB", "vast": "A100 SXM4"},
    "H100N": {"runpod": "NVIDIA H100 NVL", "vast": "H100 NVL"},
    "H100S": {"runpod": "NVIDIA H100 80GB HBM3", "vast": "H100 SXM"},
    "H200": {"runpod": "NVIDIA H200", "vast": "H200"},
    "B200": {"runpod": "NVIDIA B200", "vast": "B200"},
    "RTX4090": {"runpod": "NVIDIA GeForce RTX 4090", "vast": "RTX 4090"},
    "A6000": {"runpod": "NVIDIA RTX A6000", "vast": "RTX A6000"},
    "6000Ada": {"runpod": "NVIDIA RTX 6000 Ada Generation", "vast": "RTX 6000Ada"},
}


def key(name: str) -> str:
    """A GPU name as every spelling of it compares: case, spaces, `_` and `-` do not count
    (`RTX4090`, `rtx_4090`, `RTX 4090` and `rtx-4090` are one card)."""
    return "".join(c for c in name.lower() if c not in " _-")


def lookup(name: str, provider: str) -> str | None:
    """What `provider` calls the GPU `name` names, in any common spelling: a short name
    (`RTX4090`) or a provider's own name for it (`RTX 4090`, `NVIDIA GeForce RTX 4090`); None
    for a name the table does not know."""
    k = key(name)
    for short, names in GPUS.items():
        if k == key(short) or any(k == key(n) for n in names.values()):
            return names.get(provider)
    return None


class UnknownGpu(ValueError):
    """A name that is no short name; the message lists the known ones."""


def short_name(name: str) -> str:
    """The table's spelling of a short name given in any case; UnknownGpu otherwise."""
    by_key = {key(k): k for k in GPUS}
    try:
        return by_key[key(name)]
    except KeyError:
        raise UnknownGpu(f"unknown GPU '{name}' (known: {', '.join(GPUS)})") from None


def provider_name(name: str, provider: str) -> str:
    """What `provider` calls the GPU with short name `name`."""
    short = short_name(name)
    try:
        return GPUS[short][provider]
    except KeyError:
        raise UnknownGpu(f"{provider} has no {short} GPU") from None


def memory(gb: float | None) -> str:
    """A GPU's memory as its vendor names the card, "24 GB", the one way every table, menu and
    summary shows it. Cards come in whole GiB. RunPod's memoryInGb is that number already;
    Vast's gpu_ram counts MiB (24564 on an RTX 4090, 81920 on an A100 80GB), which trainsh
    reads as the official CLI does, MB / 1000 (24.564: what `--min-gpu-ram` compares), so a
    fraction is thousands of MiB."""
    if not gb:
        return "-"
    gib = gb if gb == int(gb) else gb * 1000 / 1024
    return f"{round(gib)} GB"
