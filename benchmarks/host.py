"""What the machine a benchmark ran on offers its kernels: CPU model (and LLVM's name for it: a virtual machine's
model name may hide it), the ISA extensions kernels are built for, cache sizes per level, core count, the BLAS
library and kernel NumPy uses, and the parameters the numba kernels derive from the host
(sbif/runtime/numba/host.py, the home of those).

Every figure of a run depends on these (a kernel tuned for a 512 KiB L2 behaves differently with 2 MiB; OpenBLAS's
kernel choice halves or doubles GEMM), so every run records them. Linux's /proc/cpuinfo and sysfs are read where
they exist; elsewhere each missing source leaves its field empty (None, or an empty list) without an error.
The parsers take text and directories as arguments, so tests feed them other machines' files.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from sbif.runtime.numba import host as numba_host
from sbif.runtime.numba.host import parse_size  # sysfs's cache size format, as the numba kernels read it

CPUINFO = "/proc/cpuinfo"
SYSFS_CPU = "/sys/devices/system/cpu"

#: the ISA extensions that decide which kernels a compiler or library can use, in the order shown, each with the
#: names Linux's cpuinfo gives it (x86 `flags`; ARM `Features`: `asimd` on AArch64, `neon` on 32-bit ARM)
KERNEL_EXTENSIONS: Sequence[Tuple[str, Tuple[str, ...]]] = (
    ("SSE4.2", ("sse4_2",)),
    ("AVX", ("avx",)),
    ("AVX2", ("avx2",)),
    ("FMA", ("fma",)),
    ("AVX-512F", ("avx512f",)),
    ("AVX-512BW", ("avx512bw",)),
    ("AVX-512VL", ("avx512vl",)),
    ("AVX-512VNNI", ("avx512_vnni",)),
    ("AVX-512BF16", ("avx512_bf16",)),
    ("AVX-512FP16", ("avx512_fp16",)),
    ("AMX", ("amx_tile",)),
    ("NEON", ("asimd", "neon")),
    ("SVE", ("sve",)),
    ("SVE2", ("sve2",)),
)


def read_text(path: str) -> Optional[str]:
    """A file's text, or None where it does not exist or cannot be read (another OS, a container without it)."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


# -- /proc/cpuinfo -----------------------------------------------------------------------------------------------------
def first_processor(cpuinfo: str) -> Dict[str, str]:
    """The `key: value` fields of cpuinfo, each as the first processor gives it (ARM kernels also print
    machine-wide fields such as `Hardware` after the last processor: those are read too)."""
    fields: Dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(cpuinfo: Optional[str]) -> str:
    """The CPU's name: x86's `model name`, else ARM's `Hardware` / `CPU part`, else what Python's platform says."""
    fields = first_processor(cpuinfo or "")
    for key in ("model name", "Hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    if fields.get("CPU implementer") and fields.get("CPU part"):
        return "ARM implementer {} part {}".format(fields["CPU implementer"], fields["CPU part"])
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags(cpuinfo: Optional[str]) -> Set[str]:
    """The first processor's feature names (x86 `flags`, ARM `Features`)."""
    fields = first_processor(cpuinfo or "")
    return set((fields.get("flags") or fields.get("Features") or "").split())


def kernel_extensions(flags: Iterable[str]) -> List[str]:
    """The extensions of KERNEL_EXTENSIONS that `flags` names, in that order."""
    present = set(flags)
    return [name for name, aliases in KERNEL_EXTENSIONS if present.intersection(aliases)]


# -- sysfs: caches and cores -------------------------------------------------------------------------------------------
def parse_cpu_list(text: str) -> Set[int]:
    """A kernel CPU list ("0-3,8,10-11") as a set of CPU numbers."""
    cpus: Set[int] = set()
    for part in text.strip().split(","):
        if "-" in part:
            low, high = part.split("-")
            cpus.update(range(int(low), int(high) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


def caches(cpu_dir: str) -> List[Dict[str, Any]]:
    """The caches CPU `cpu_dir` (sysfs's cpuN) sees, one per level and type: name (L1d, L1i, L2, L3), bytes, the
    CPUs sharing it and whether it is a core's own (shared only by that core's SMT threads). Empty without sysfs."""
    siblings_text = read_text(os.path.join(cpu_dir, "topology", "thread_siblings_list"))
    siblings = parse_cpu_list(siblings_text) if siblings_text else None
    found = []
    cache_dir = os.path.join(cpu_dir, "cache")
    for index in sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []:
        fields = {key: read_text(os.path.join(cache_dir, index, key)) for key in
                  ("level", "type", "size", "shared_cpu_list")}
        try:
            size = parse_size(fields["size"] or "")
            level = int(fields["level"] or "")
        except ValueError:  # a cache sysfs does not describe
            continue
        kind = (fields["type"] or "Unified").strip()
        name = "L{}".format(level) + {"Data": "d", "Instruction": "i"}.get(kind, "")
        sharing = parse_cpu_list(fields["shared_cpu_list"]) if fields["shared_cpu_list"] else None
        found.append({"name": name, "bytes": size,
                      "cpus_sharing": len(sharing) if sharing else None,
                      "per_core": None if sharing is None or siblings is None else sharing <= siblings})
    return found


def core_count(cpu_root: str) -> Optional[int]:
    """Physical cores: distinct (package, core) pairs of sysfs's topology (SMT threads counted once)."""
    cores = set()
    for entry in os.listdir(cpu_root) if os.path.isdir(cpu_root) else []:
        if not (entry.startswith("cpu") and entry[3:].isdigit()):
            continue
        topology = os.path.join(cpu_root, entry, "topology")
        package, core = (read_text(os.path.join(topology, name)) for name in ("physical_package_id", "core_id"))
        if package is not None and core is not None:
            cores.add((package.strip(), core.strip()))
    return len(cores) or None


def l2_per_core_bytes(found: List[Dict[str, Any]]) -> Optional[int]:
    """A core's L2: its own, or its share of an L2 several cores share (None where sysfs gave no L2)."""
    for cache in found:
        if cache["name"] == "L2":
            if cache["per_core"] is False and cache["cpus_sharing"]:
                return cache["bytes"] // cache["cpus_sharing"]
            return cache["bytes"]
    return None


# -- BLAS --------------------------------------------------------------------------------------------------------------
def blas_libraries() -> List[Dict[str, Any]]:
    """The BLAS libraries loaded in this process (import numpy first): threadpoolctl's view where it is installed
    (library, version, kernel architecture, threads), else OpenBLAS's own core name through ctypes."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        name = openblas_core_name()
        return [{"library": "openblas", "architecture": name}] if name else []
    return [{"library": info.get("internal_api"), "version": info.get("version"),
             "architecture": info.get("architecture"), "threads": info.get("num_threads"),
             "threading_layer": info.get("threading_layer")}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def openblas_core_name() -> Optional[str]:
    """OpenBLAS's kernel as the copy loaded in this process reports it (openblas_get_corename), or None."""
    import ctypes

    maps = read_text("/proc/self/maps")
    paths = {line.split()[-1] for line in (maps or "").splitlines() if line.split()}
    for path in sorted(paths):
        if "openblas" in os.path.basename(path) and ".so" in os.path.basename(path):
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
                if hasattr(library, symbol):
                    function = getattr(library, symbol)
                    function.restype = ctypes.c_char_p
                    return function().decode()
    return None


def blas_text(libraries: List[Dict[str, Any]]) -> str:
    """'OpenBLAS 0.3.31 SkylakeX' (the libraries NumPy loaded, each with its kernel), or 'unknown'."""
    names = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "accelerate": "Accelerate"}
    parts = []
    for library in libraries:
        words = [names.get(library.get("library") or "", library.get("library") or "BLAS")]
        words += [str(library[key]) for key in ("version", "architecture") if library.get(key)]
        parts.append(" ".join(words))
    return ", ".join(parts) or "unknown"


# -- the whole description ---------------------------------------------------------------------------------------------
def describe(cpuinfo_path: str = CPUINFO, cpu_root: str = SYSFS_CPU) -> Dict[str, Any]:
    """This machine, as results/latest.json records it (call it where NumPy is imported, for the BLAS)."""
    cpuinfo = read_text(cpuinfo_path)
    found = caches(os.path.join(cpu_root, "cpu0"))
    libraries = blas_libraries()
    return {"cpu": cpu_model(cpuinfo), "llvm_cpu": numba_host.CPU.name, "architecture": platform.machine(),
            "isa_extensions": kernel_extensions(cpu_flags(cpuinfo)), "caches": found,
            "l2_per_core_bytes": l2_per_core_bytes(found), "cores": core_count(cpu_root),
            "logical_cpus": os.cpu_count(), "blas": blas_text(libraries), "blas_libraries": libraries,
            "numba_kernels": numba_host.PARAMETERS._asdict()}


def size_text(size: int) -> str:
    """Bytes as the largest binary unit that divides them: '48 KiB', '2 MiB'."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return "{} {}".format(size // unit, name)
    return "{} B".format(size)


def summary(host: Dict[str, Any]) -> str:
    """One line for the table's header: model, cores, ISA extensions, caches, BLAS."""
    cache_parts = []
    for cache in host["caches"]:
        where = ("per core" if cache["per_core"] else
                 "shared by {} CPUs".format(cache["cpus_sharing"]) if cache["cpus_sharing"] else "")
        cache_parts.append(" ".join(part for part in (cache["name"], size_text(cache["bytes"]), where) if part))
    cores = "{} cores".format(host["cores"]) if host["cores"] else "{} CPUs".format(host["logical_cpus"])
    known = [name for name in (host.get("llvm_cpu"), host["architecture"]) if name and name != "unknown"]
    return " · ".join([host["cpu"] + " (" + ", ".join(known + [cores]) + ")",
                       " ".join(host["isa_extensions"]) or "ISA extensions unknown",
                       ", ".join(cache_parts) or "cache sizes unknown", host["blas"]])
