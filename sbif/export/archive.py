"""Zip archives read as untrusted data: the checks both safe loaders (SB2's `.zip`, SB3's `.zip` and the torch
`.pth` archives inside it) run before zipfile builds or inflates anything, and their JSON members parsed within
the pickles' build budget.

zipfile trusts what an archive says about itself: it builds an object per central-directory entry, inflates a
member as far as the deflate stream goes, and opens `../x` as readily as `x`. The functions here refuse, from
declared sizes and names, what would make reading an archive cost more than its size or reach outside it.
"""
from __future__ import annotations

import json
import re
import struct
import zipfile
from typing import Any, Dict, List, NamedTuple

from ..errors import ExportError, preview
from . import safe_pickle
from .safe_pickle import BuildBudget, exception_text

MiB = 1024 * 1024
#: Largest source file, and the default cap on an uncompressed member.
MAX_FILE_BYTES = 512 * MiB
#: Uncompressed bytes per archive byte, over all members: the Stable-Baselines writers store members uncompressed
#: (ratio 1), so a higher ratio is a bomb, not a model.
MAX_EXPANSION = 100


class ArchiveKind(NamedTuple):
    """How messages name an archive and its writer: ("an SB2 model archive", "SB2")."""

    name: str
    writer: str


def english_list(words: Any) -> str:
    """'a, b and c': the members an archive may hold, as a refusal lists them."""
    words = list(words)
    return words[0] if len(words) == 1 else "{} and {}".format(", ".join(words[:-1]), words[-1])


def check_central_directory(stream: Any, size: int, path: str, max_entries: int, kind: ArchiveKind) -> None:
    """Refuse an archive whose central directory lists more members than `kind` can have, before zipfile builds
    an object per entry (a small file could otherwise list millions).

    The end record is found as zipfile finds it: at the very end, else the last signature in the tail.
    """
    tail_length = min(size, 22 + 65535)
    stream.seek(size - tail_length)
    tail = stream.read(tail_length)
    index = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\x00\x00" else tail.rfind(b"PK\x05\x06")
    if index < 0:
        return  # not an archive zipfile can open: it says so itself
    if len(tail) - index < 22:
        raise ExportError("{}: the zip archive's end record is truncated".format(path))
    entries, directory_size = struct.unpack("<HI", tail[index + 10:index + 16])
    if (entries == 0xFFFF or directory_size == 0xFFFFFFFF) and index >= 20 and \
            tail[index - 20:index - 16] == b"PK\x06\x07":
        offset = struct.unpack("<Q", tail[index - 12:index - 4])[0]
        stream.seek(min(offset, size))
        record = stream.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries, directory_size = struct.unpack("<QQ", record[32:48])
    if entries > max_entries or directory_size > max_entries * 2048:
        raise ExportError("{}: the zip archive lists {} members in a {}-byte directory; {} has {} at most".format(
            path, entries, directory_size, kind.name, max_entries))


def check_zip_members(infos: List[zipfile.ZipInfo], path: str, allowed: Any, caps: Any,
                      container_bytes: int, kind: ArchiveKind) -> Dict[str, zipfile.ZipInfo]:
    """Refuse traversal names, unexpected (when `allowed` lists the members) or duplicate members, encryption, odd
    compression, size bombs (members over their cap, or expanding to more than MAX_EXPANSION times the
    `container_bytes` of the file the user gave, in all)."""
    found: Dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if unsafe_member_name(name):
            raise ExportError("{}: the archive member name {} points outside the archive (path traversal); "
                              "refused".format(path, preview(name)))
        if allowed is not None and name not in allowed:
            raise ExportError("{}: unexpected archive member {}; {} holds only {}".format(
                path, preview(name), kind.name, english_list(allowed)))
        if name in found:
            raise ExportError("{}: the archive holds {} twice".format(path, preview(name)))
        if info.flag_bits & 0x1:
            raise ExportError("{}: archive member {} is encrypted".format(path, preview(name)))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ExportError("{}: archive member {} uses compression method {}; {} writes stored or "
                              "deflated members only".format(path, preview(name), info.compress_type, kind.writer))
        cap = caps.get(name, MAX_FILE_BYTES) if isinstance(caps, dict) else caps
        if info.file_size > cap:
            raise ExportError("{}: archive member {} expands to {} bytes, more than the {} the safe loader "
                              "accepts (a zip bomb?)".format(path, preview(name), info.file_size, cap))
        found[name] = info
    total = sum(info.file_size for info in infos)
    if total > max(MAX_EXPANSION * container_bytes, MiB):
        raise ExportError("{}: the archive's members expand to {} bytes from {} (a zip bomb?)".format(
            path, total, container_bytes))
    return found


def unsafe_member_name(name: str) -> bool:
    """Whether a member name is absolute, has a drive letter, a `..` part or a NUL: never a name a writer makes."""
    parts = re.split(r"[\\/]", name)
    return (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) is not None or ".." in parts
            or "\x00" in name)


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> bytes:
    """A member's bytes, never more than it declares (zipfile also checks the CRC at the end)."""
    chunks = []
    total = 0
    with archive.open(info) as stream:
        while True:
            chunk = stream.read(min(MiB, info.file_size - total + 1))
            if not chunk:
                break
            total += len(chunk)
            if total > info.file_size:
                raise ExportError("{}: archive member {} expands beyond its declared {} bytes (a zip "
                                  "bomb?)".format(path, preview(info.filename), info.file_size))
            chunks.append(chunk)
    return b"".join(chunks)


#: Characters that start or separate JSON values: at most one value per character, plus the first.
_JSON_SEPARATORS = (b",", b":", b"[", b"{")


def json_member(raw: bytes, name: str, path: str) -> Any:
    """A member's JSON, parsed once what parsing it would build is known to fit the budget the pickles have
    (`safe_pickle.BuildBudget`): every value is an object (`[[],[],...]` is 64 bytes of lists per 3 bytes of
    text), counted from the characters that can start one, strings included (an overestimate)."""
    values = 1 + sum(raw.count(separator) for separator in _JSON_SEPARATORS)
    BuildBudget(len(raw), "{}: the {} member".format(path, name), "a value every few bytes?").charge(
        values * safe_pickle.OBJECT_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except Exception as exc:  # UnicodeDecodeError, JSONDecodeError, RecursionError on absurd nesting
        raise ExportError("{}: the {} member is not valid JSON: {}".format(path, name, exception_text(exc))) from None


__all__ = ["ArchiveKind", "MAX_EXPANSION", "MAX_FILE_BYTES", "MiB", "check_central_directory", "check_zip_members",
           "english_list", "json_member", "read_member", "unsafe_member_name"]
