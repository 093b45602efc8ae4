"""Running a benchmark on an AVX-512 machine as an AVX2-only one would (`--isa avx2`): both
sides held to AVX2 instructions. A stand-in for an AVX2 CPU, not one: the instructions are the
same, the ports and caches are the machine's own."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What each side is told (read when the libraries load, so set before PyTorch is imported):
# PyTorch's ATen kernels, MKL, oneDNN and FBGEMM, and ferret's own loops.
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
    "FERRET_SIMD": "avx2",
}


def describe():
    return "run as AVX2: " + ", ".join(f"{k}={v}" for k, v in AVX2_ENV.items()) + \
        ", gemm crate without AVX-512 kernels"


def build_ferret(isa=None):
    """Builds ferret in release mode and returns the binary. With isa="avx2", into
    target/gemm-avx2 without the gemm crate's AVX-512 kernels (RUSTFLAGS="--cfg
    ferret_gemm_avx2", read by crates/ferret-models/Cargo.toml), which FERRET_SIMD does not
    reach."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    env = dict(os.environ)
    if isa == "avx2":
        target = os.path.join(ROOT, "target", "gemm-avx2")
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + " --cfg ferret_gemm_avx2").strip()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "ferret", "--target-dir", target],
                   cwd=ROOT, check=True, env=env)
    return os.path.join(target, "release", "ferret")
