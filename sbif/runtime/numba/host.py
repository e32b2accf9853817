"""The machine the numba kernels are built for, and the kernel parameters derived from it: the one home of the
vector width, the tile shapes, the panel width of packed weights and the cache-blocking sizes.

Read once per process, at import: the CPU as LLVM sees it (llvmlite's host CPU name and features: numba compiles
the kernels for the target "host", so what LLVM reports is what the machine code may use) and the data caches
(Linux sysfs, else `os.sysconf`, else DEFAULT_CACHES). `derive` turns them into `KernelParameters`, a pure function
of its arguments that the tests drive with made-up hosts. Every parameter changes machine code or the packed
weight layout, so all of them are part of the digest that names the compiled module and stamps numba's JIT cache
(`cache.module_name`): a module built with other parameters is never loaded.

$SBIF_NUMBA_VECTOR (8 or 16) overrides the vector width, so that the 16-lane code runs, and is tested, on hosts
without AVX-512 (LLVM legalises a 16-lane vector into narrower registers there) and the 8-lane code on hosts with
it. Importable without numba (a process running the compiled module never imports numba; llvmlite is imported,
read once).
"""
from __future__ import annotations

import glob
import os
import platform
from typing import Callable, FrozenSet, Mapping, NamedTuple, Optional, Tuple

from ...errors import UnsupportedError

#: the environment variable that overrides the vector width
VECTOR_ENV = "SBIF_NUMBA_VECTOR"
#: float32 lanes of the kernels' vectors: NARROW_LANES (AVX and AVX2's ymm; LLVM splits them where vectors are
#: narrower), WIDE_LANES where AVX-512's zmm registers hold them
NARROW_LANES, WIDE_LANES = 8, 16
#: the LLVM feature that gives 32 registers of 512 bits on x86
AVX512 = "avx512f"
#: register files: (registers, bits each) with AVX-512, with AVX or AVX2, on AArch64 (NEON), and elsewhere
AVX512_REGISTERS, AVX_REGISTERS, NEON_REGISTERS, OTHER_REGISTERS = (32, 512), (16, 256), (32, 128), (16, 128)
#: bits of a float32, the element of every vector
FLOAT32_BITS = 32
#: vectors per panel: a tile reads a panel's row of weights as this many vector loads, and keeps as many vector sums
#: per row, so a panel is two vectors wide (the layout tuned on AVX2, kept in units of the host's vectors)
VECTORS_PER_PANEL = 2
#: tiles keep their sums in half of the register file; the other half holds the weights loaded for a step of k, the
#: broadcast input and the addresses LLVM keeps in vectors
SUM_REGISTER_SHARE = 2
#: outputs of a group of dot products over several rows: `kernels.dense_dots` leaves at most one output after the
#: groups, for the one-output group
GROUP_DOT_OUTPUTS = 2
#: no tile has more rows than this: more rows need more input rows in the L1 cache at once and leave more rows of
#: a batch to the one-row tiles
MAX_TILE_ROWS = 8
#: data cache sizes where nothing can be read: those of the AMD EPYC (Zen 3) the kernels were first tuned on
DEFAULT_L1D_BYTES, DEFAULT_L2_BYTES = 32 << 10, 512 << 10
#: where Linux describes cpu0's caches (index*/level, type, size)
SYSFS_CACHES = "/sys/devices/system/cpu/cpu0/cache"
#: float32 bytes
FLOAT32_BYTES = FLOAT32_BITS // 8


class Cpu(NamedTuple):
    """The CPU as LLVM sees it: its name (e.g. "skylake-avx512", "znver3") and the features it enables."""

    name: str
    features: FrozenSet[str]


class Caches(NamedTuple):
    """Bytes of one core's level-1 data cache and level-2 cache. The blocking sizes follow the L2 (what was measured
    to matter); the L1 is recorded with it, in the digest of the compiled kernels, for a rule that will need it."""

    l1d_bytes: int
    l2_bytes: int


class KernelParameters(NamedTuple):
    """What the kernels are compiled with, derived from a `Cpu` and its `Caches` (`derive`)."""

    #: float32 lanes of the vectors the tiles and dot products keep their sums in
    vector: int
    #: columns of a panel of packed weights (VECTORS_PER_PANEL vectors): changes the packed layout
    panel: int
    #: rows of a tile of panels and of a group of dot products
    tile_rows: int
    #: panels of the widest tile of one row (tiles of one row also come in halves of it, down to one panel)
    row_tile_panels: int
    #: outputs of a group of tile_rows rows of dot products (the kernel leaves at most one output after them)
    group_dot_outputs: int
    #: outputs of a group of one row of dot products
    row_dot_outputs: int
    #: bytes of the rows of x a block of tiles reads (`kernels.dense_panels`): they stay in the L2 cache while every
    #: panel passes over them
    row_block_bytes: int
    #: elements of a dense product's weights from which a batch runs it through BLAS (`backend`): smaller weights
    #: stay in the L2 cache, where the interpreter's tiles match BLAS without its calls and staging
    blas_min_weights: int
    #: bytes of scratch of an interpreter call on a chunk of rows (`backend`): what a step writes, the next reads
    #: from the L2 cache
    cached_chunk_bytes: int
    #: bytes of im2col columns written and multiplied at a time by BLAS (`backend`), read back by the product from
    #: the L2 cache
    column_block_bytes: int


def derive(cpu: Cpu, caches: Caches, vector: Optional[int] = None, machine: str = "x86_64") -> KernelParameters:
    """The kernel parameters for `cpu` with `caches` on architecture `machine` (`platform.machine()`): WIDE_LANES
    where AVX-512 is present, else NARROW_LANES, unless `vector` says otherwise; tiles holding as many vector sums
    as half the register file (in vectors of that width) allows; blocking sizes in proportion to the L2 cache, in
    the proportions measured on the 512 KiB-L2 host the kernels were first tuned on, but im2col's block, measured
    on a 2 MiB-L2 host (benchmarks/README.md, "Tuning")."""
    if vector is None:
        vector = WIDE_LANES if AVX512 in cpu.features else NARROW_LANES
    registers, bits = register_file(cpu, machine)
    sums = max(1, registers * bits // (FLOAT32_BITS * vector) // SUM_REGISTER_SHARE)
    tile_rows = max(1, min(MAX_TILE_ROWS, sums // VECTORS_PER_PANEL))
    l2 = caches.l2_bytes
    return KernelParameters(
        vector=vector, panel=VECTORS_PER_PANEL * vector, tile_rows=tile_rows, row_tile_panels=tile_rows,
        group_dot_outputs=GROUP_DOT_OUTPUTS, row_dot_outputs=tile_rows, row_block_bytes=l2 // 8,
        blas_min_weights=l2 // FLOAT32_BYTES, cached_chunk_bytes=2 * l2, column_block_bytes=l2 // 2)


def register_file(cpu: Cpu, machine: str) -> Tuple[int, int]:
    """(vector registers, bits each) of `cpu` on `machine`: what the tiles' sums are sized by."""
    if AVX512 in cpu.features:
        return AVX512_REGISTERS
    if "avx" in cpu.features:
        return AVX_REGISTERS
    if machine.lower() in ("aarch64", "arm64"):
        return NEON_REGISTERS
    return OTHER_REGISTERS


def read_cpu() -> Cpu:
    """LLVM's view of this CPU (llvmlite); an unnamed CPU without features where llvmlite cannot tell (no numba
    installed, a platform it does not know)."""
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        return Cpu(llvm.get_host_cpu_name(), frozenset(name for name, enabled in features.items() if enabled))
    except (ImportError, RuntimeError, OSError):
        return Cpu("unknown", frozenset())


def read_caches(root: str = SYSFS_CACHES, sysconf: Callable[[str], int] = os.sysconf) -> Caches:
    """cpu0's level-1 data and level-2 cache sizes: from sysfs (`root`), else `sysconf`'s (glibc), else the
    DEFAULT_* sizes, each level on its own."""
    found = {}
    for index in sorted(glob.glob(os.path.join(root, "index*"))):
        try:
            level, kind, size = (_read(os.path.join(index, name)) for name in ("level", "type", "size"))
            found.setdefault((int(level), kind in ("Data", "Unified")), parse_size(size))
        except (OSError, ValueError):
            continue
    l1d, l2 = found.get((1, True)), found.get((2, True))
    l1d = l1d or _sysconf(sysconf, "SC_LEVEL1_DCACHE_SIZE") or DEFAULT_L1D_BYTES
    l2 = l2 or _sysconf(sysconf, "SC_LEVEL2_CACHE_SIZE") or DEFAULT_L2_BYTES
    return Caches(l1d, l2)


def parse_size(text: str) -> int:
    """Bytes of a sysfs cache size ("48K", "2048K", "2M", "512"). Raises ValueError for anything else."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) <= 0:
        raise ValueError("not a cache size: {!r}".format(text))
    return int(digits) * scale


def _read(path: str) -> str:
    with open(path) as file:
        return file.read().strip()


def _sysconf(sysconf: Callable[[str], int], name: str) -> Optional[int]:
    """sysconf(name) when the platform knows it and reports a size, else None."""
    try:
        value = sysconf(name)
    except (ValueError, OSError):
        return None
    return value if value and value > 0 else None


def vector_override(environment: Mapping[str, str]) -> Optional[int]:
    """The vector width $SBIF_NUMBA_VECTOR asks for, None when it is unset or empty. Raises UnsupportedError naming
    the accepted values for anything else."""
    text = environment.get(VECTOR_ENV, "").strip()
    if not text:
        return None
    if text not in (str(NARROW_LANES), str(WIDE_LANES)):
        raise UnsupportedError("{}={!r}: the numba kernels' vectors have {} or {} float32 lanes".format(
            VECTOR_ENV, text, NARROW_LANES, WIDE_LANES))
    return int(text)


def describe(cpu: Cpu, caches: Caches, parameters: KernelParameters) -> str:
    """One line naming all the compiled code depends on here, the same in every process on this host (the features
    sorted): for the digest that names the compiled kernels (`cache.module_name`)."""
    return "{} [{}] {!r} {!r}".format(cpu.name, ",".join(sorted(cpu.features)), caches, parameters)


#: this process's host and the parameters its kernels are compiled with
CPU = read_cpu()
CACHES = read_caches()
PARAMETERS = derive(CPU, CACHES, vector_override(os.environ), platform.machine())
