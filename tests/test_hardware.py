"""hardware: CPU feature detection from /proc/cpuinfo text, and a matmul FLOP/s measurement."""

from __future__ import annotations

import torch

from llmbook_utils.hardware import cpu_features, matmul_flops

SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu avx avx2 fma
"""


def test_flags_from_cpuinfo():
    intel = cpu_features(SAPPHIRE_RAPIDS)
    assert intel.model.startswith("Intel(R) Xeon(R) Platinum 8481C")
    assert intel.flags == ("avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
    assert intel.native_bf16
    amd = cpu_features(EPYC)
    assert amd.flags == () and not amd.native_bf16
    assert amd.capability == torch.backends.cpu.get_cpu_capability()


def test_matmul_flops_is_positive():
    assert matmul_flops(64, repeats=2) > 0
