"""What the benchmarks ran on, in words, for their JSON."""

import os
import platform

import torch


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"
