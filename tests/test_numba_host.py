"""The numba kernels' host parameters (`sbif.runtime.numba.host`): derived from given CPUs and caches, read from sysfs
with its fallbacks, overridden by $SBIF_NUMBA_VECTOR, and part of the digest that names the compiled kernels."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from sbif.errors import SbifError, UnsupportedError
from sbif.runtime.numba import cache, host

AVX2 = host.Cpu("znver3", frozenset({"sse4.2", "avx", "avx2", "fma"}))
AVX512 = host.Cpu("sapphirerapids", AVX2.features | {"avx512f", "avx512bw", "avx512vl", "avx512dq"})
NEON = host.Cpu("neoverse-n1", frozenset({"neon", "fp-armv8"}))
KIB, MIB = 1 << 10, 1 << 20


def test_an_avx2_host_gets_8_lanes_and_the_sizes_tuned_on_the_512_kib_l2_host():
    """The host the constants were first measured on (Zen 3: AVX2, 16 ymm registers, 512 KiB L2) derives them, but
    for the im2col block of the BLAS convolutions: half the L2, as measured on the 2 MiB host (it was 1 MiB)."""
    parameters = host.derive(AVX2, host.Caches(32 * KIB, 512 * KIB))
    assert parameters == host.KernelParameters(
        vector=8, panel=16, tile_rows=4, row_tile_panels=4, group_dot_outputs=2, row_dot_outputs=4,
        row_block_bytes=64 * KIB, blas_min_weights=1 << 17, cached_chunk_bytes=1 * MIB, column_block_bytes=256 * KIB)


def test_an_avx512_host_gets_16_lanes_and_tiles_for_32_registers():
    parameters = host.derive(AVX512, host.Caches(48 * KIB, 2 * MIB))
    assert (parameters.vector, parameters.panel, parameters.tile_rows, parameters.row_tile_panels) == (16, 32, 8, 8)
    assert parameters.row_dot_outputs == 8
    # the blocking follows the L2 cache: four times the 512 KiB host's
    assert parameters.blas_min_weights == 1 << 19 and parameters.cached_chunk_bytes == 4 * MIB
    assert parameters.row_block_bytes == 256 * KIB


def test_the_override_picks_the_width_and_the_tiles_follow_the_registers():
    """16 lanes on AVX2 are two ymm each: half as many fit the register file, so the tiles have half the rows; 8
    lanes on AVX-512 fill 32 ymm registers, capped at MAX_TILE_ROWS rows."""
    wide_on_avx2 = host.derive(AVX2, host.Caches(32 * KIB, 512 * KIB), vector=16)
    assert (wide_on_avx2.vector, wide_on_avx2.panel, wide_on_avx2.tile_rows) == (16, 32, 2)
    narrow_on_avx512 = host.derive(AVX512, host.Caches(48 * KIB, 2 * MIB), vector=8)
    assert (narrow_on_avx512.vector, narrow_on_avx512.panel, narrow_on_avx512.tile_rows) == (8, 16, host.MAX_TILE_ROWS)


def test_hosts_without_avx_keep_8_lanes():
    """NEON's 32 registers of 128 bits hold as many 8-lane sums as AVX2's 16 ymm; a bare x86 half as many."""
    assert host.derive(NEON, host.Caches(64 * KIB, 1 * MIB), machine="aarch64")[:3] == (8, 16, 4)
    assert host.derive(host.Cpu("unknown", frozenset()), host.Caches(32 * KIB, 256 * KIB))[:3] == (8, 16, 2)


@pytest.mark.parametrize("value, lanes", [(None, None), ("", None), (" 8 ", 8), ("16", 16)])
def test_the_vector_override(value, lanes):
    environment = {} if value is None else {host.VECTOR_ENV: value}
    assert host.vector_override(environment) == lanes


@pytest.mark.parametrize("value", ["12", "32", "wide", "-8"])
def test_a_bad_vector_override_is_one_clear_error(value):
    with pytest.raises(UnsupportedError, match=r"^SBIF_NUMBA_VECTOR=.*: the numba kernels' vectors have 8 or 16 "
                                               r"float32 lanes$") as caught:
        host.vector_override({host.VECTOR_ENV: value})
    assert isinstance(caught.value, SbifError) and "\n" not in str(caught.value)


def write_cache(root, index, level, kind, size):
    folder = root / "index{}".format(index)
    folder.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size)):
        (folder / name).write_text("{}\n".format(value))


def no_sysconf(name):
    raise ValueError("unrecognized configuration name")


def test_caches_from_sysfs(tmp_path):
    write_cache(tmp_path, 0, 1, "Data", "48K")
    write_cache(tmp_path, 1, 1, "Instruction", "32K")
    write_cache(tmp_path, 2, 2, "Unified", "2048K")
    write_cache(tmp_path, 3, 3, "Unified", "307200K")
    assert host.read_caches(str(tmp_path), no_sysconf) == host.Caches(48 * KIB, 2 * MIB)


def test_missing_sysfs_falls_back_to_sysconf_then_to_defaults(tmp_path):
    sizes = {"SC_LEVEL1_DCACHE_SIZE": 64 * KIB, "SC_LEVEL2_CACHE_SIZE": 0}  # glibc says 0 where it does not know
    assert host.read_caches(str(tmp_path / "none"), sizes.__getitem__) == host.Caches(64 * KIB, host.DEFAULT_L2_BYTES)
    assert host.read_caches(str(tmp_path / "none"), no_sysconf) == host.Caches(host.DEFAULT_L1D_BYTES,
                                                                               host.DEFAULT_L2_BYTES)


def test_an_unreadable_sysfs_entry_is_passed_over(tmp_path):
    write_cache(tmp_path, 0, 1, "Data", "lots")
    write_cache(tmp_path, 1, 2, "Unified", "1M")
    assert host.read_caches(str(tmp_path), no_sysconf) == host.Caches(host.DEFAULT_L1D_BYTES, 1 * MIB)


@pytest.mark.parametrize("text, size", [("48K", 48 * KIB), ("2M", 2 * MIB), ("512", 512), ("1g", 1 << 30)])
def test_parse_size(text, size):
    assert host.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "K", "0K", "1.5M", "-1K"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(ValueError):
        host.parse_size(text)


def test_this_process_reads_its_host():
    """The parameters in use are those derived from what LLVM and the caches say here (and the environment)."""
    assert host.PARAMETERS == host.derive(host.CPU, host.CACHES, host.vector_override(os.environ),
                                          platform.machine())
    if host.VECTOR_ENV not in os.environ:
        assert host.PARAMETERS.vector == (16 if "avx512f" in host.CPU.features else 8)


@pytest.mark.parametrize("change", [
    {"vector": 8 if host.PARAMETERS.vector == 16 else 16}, {"panel": host.PARAMETERS.panel * 2},
    {"tile_rows": host.PARAMETERS.tile_rows + 1}, {"row_block_bytes": host.PARAMETERS.row_block_bytes // 2}])
def test_the_compiled_kernels_name_changes_with_every_parameter(monkeypatch, change):
    name = cache.module_name()
    monkeypatch.setattr(host, "PARAMETERS", host.PARAMETERS._replace(**change))
    assert cache.module_name() != name


def test_the_compiled_kernels_name_changes_with_the_cpu_and_its_caches(monkeypatch):
    name = cache.module_name()
    monkeypatch.setattr(host, "CACHES", host.Caches(host.CACHES.l1d_bytes, host.CACHES.l2_bytes * 2))
    assert cache.module_name() != name
    monkeypatch.undo()
    monkeypatch.setattr(host, "CPU", host.Cpu(host.CPU.name, host.CPU.features ^ {"avx512f"}))  # on or off, as here
    assert cache.module_name() != name


def test_the_module_name_is_the_same_in_every_process():
    """Feature sets iterate in a per-process order (string hashing): the digest must read them sorted."""
    script = "from sbif.runtime.numba import cache; print(cache.module_name())"
    names = {subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONHASHSEED=str(seed)),
                            check=True, capture_output=True, text=True).stdout.strip() for seed in (1, 2)}
    assert names == {cache.module_name()}
