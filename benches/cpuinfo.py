"""The line every benchmark prints first: CPU model, cores and instruction set (AVX-512 / AVX2),
since ferret's kernels and the peers' differ by instruction set."""
import os


def cpu():
    model, flags = "unknown", set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model == "unknown":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return f"{model}, {os.cpu_count()} cores, {isa}"
