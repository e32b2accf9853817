"""A prototype of the numba backend's ahead-of-time build without `numba.pycc` (pending deprecation: PYCC.md).

`aot` builds the interpreter's entry points (`kernels.execute`, `execute_one`, `im2col`, and the lanes') into a
CPython extension module with pycc. This module builds an extension module with the same entry points without
pycc, so that a process that finds it built still never imports numba. It uses numba's public `cfunc` and
llvmlite, and two private pieces of numba: a cfunc's `_library` (its optimized LLVM module) and
`Dispatcher.enable_caching` (turned off during the build):

1. each entry point is wrapped in a `numba.cfunc` taking raw pointers and extents (C ABI), which rebuilds the
   arrays with `carray` and calls the kernel entry point, returning 0, or 1 if the kernel raised;
2. numba's JIT compiles them (with its disk cache turned off: code loaded from it carries no LLVM IR to emit),
   and the optimized LLVM module of each (the kernels linked in) is emitted by llvmlite as a position-independent
   object for this CPU: the IR the JIT runs, so results are the JIT's, bit for bit;
3. the system C compiler links the object with a few lines of C: the two numba runtime helpers the kernels' code
   refers to (`_SUPPORT`), and the module's Python functions (`_GLUE`: they take the arrays through the buffer
   protocol, check their item types, release the GIL around the call and raise RuntimeError if the kernel
   raised, as the pycc module's do).

The module keeps the pycc module's signatures, so `load()` returns the backend's `Kernels` and could replace
`aot.load()` as is. Like pycc it needs a C compiler and Python's headers (not setuptools).

    python -m sbif.runtime.numba.aot_cfunc      build (or find) this machine's module and print its path
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Any, Dict, List, Optional

from . import aot, cache
from .backend import Kernels

#: the C compiler that links the module ($CC, as build tools read it)
COMPILER_ENV = "CC"

# The kernels' optimized code refers to two functions of numba's C runtime, which the JIT resolves from numba's
# own extension modules; the module gets its own. Both run without Python.
_SUPPORT = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Releasing the last reference of an array that owns memory. The entry points only see arrays viewed over the
   caller's buffers (carray), which own none, so this is never reached. */
void NRT_MemInfo_call_dtor(void *meminfo) {
    (void)meminfo;
    fputs("sbif compiled kernels: an array owning memory was released (a bug: please report it)\n", stderr);
    abort();
}

/* numba's reshape of an array that is not known to be contiguous: the strides of `newdims` over the same memory
   (return 1), or 0 when that needs a copy. NumPy's rule: merge runs of old and new axes whose products match;
   a run of old axes must be contiguous in the array's order. */
int numba_attempt_nocopy_reshape(intptr_t nd, const intptr_t *dims, const intptr_t *strides, intptr_t newnd,
                                 const intptr_t *newdims, intptr_t *newstrides, intptr_t itemsize,
                                 int is_f_order) {
    intptr_t olddims[64], oldstrides[64], oldnd = 0, oi = 0, oj = 1, ni = 0, nj = 1, i, last;
    if (nd > 64) return 0;
    for (i = 0; i < nd; i++) {
        if (dims[i] == 0) {  /* no elements: any strides do */
            for (i = 0; i < newnd; i++) newstrides[i] = itemsize;
            return 1;
        }
        if (dims[i] != 1) { olddims[oldnd] = dims[i]; oldstrides[oldnd] = strides[i]; oldnd++; }
    }
    while (ni < newnd && oi < oldnd) {
        intptr_t new_run = newdims[ni], old_run = olddims[oi];
        while (new_run != old_run) {
            if (new_run < old_run) new_run *= newdims[nj++]; else old_run *= olddims[oj++];
        }
        for (i = oi; i < oj - 1; i++) {
            if (is_f_order ? oldstrides[i + 1] != olddims[i] * oldstrides[i]
                           : oldstrides[i] != olddims[i + 1] * oldstrides[i + 1]) return 0;
        }
        if (is_f_order) {
            newstrides[ni] = oldstrides[oi];
            for (i = ni + 1; i < nj; i++) newstrides[i] = newstrides[i - 1] * newdims[i - 1];
        } else {
            newstrides[nj - 1] = oldstrides[oj - 1];
            for (i = nj - 1; i > ni; i--) newstrides[i - 1] = newstrides[i] * newdims[i];
        }
        ni = nj++;
        oi = oj++;
    }
    last = ni >= 1 ? newstrides[ni - 1] * (is_f_order ? newdims[ni - 1] : 1) : itemsize;
    for (i = ni; i < newnd; i++) newstrides[i] = last;
    return 1;
}
"""


# The module's Python functions around the cfuncs (`@NAME@` is the module's name). METH_FASTCALL: no argument
# tuple is built, so a call costs about what a call of the pycc module's functions costs.
_GLUE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

int32_t sbif_execute(void *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, void *, int64_t, void *,
                     int64_t, void *, int64_t, void *, int64_t, void *, int64_t, void *, int64_t, void *, int64_t);
int32_t sbif_execute_one(void *, int64_t, void *, int64_t, void *, int64_t);
int32_t sbif_im2col(void *, int64_t, int64_t, int64_t, int64_t, void *, int64_t, int64_t, int64_t, int64_t,
                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
int32_t sbif_run_lane(void *, int64_t, void *, int64_t, int64_t);
int32_t sbif_serve(void *, int64_t, void *, int64_t, int64_t, int64_t);
int32_t sbif_publish(void *, int64_t, int64_t, int64_t);
int32_t sbif_wait_change(void *, int64_t, int64_t, int64_t, int64_t);

/* `object`'s memory as a C-contiguous, writable buffer of `ndim` dimensions of `code` items (a struct code: 'q'
   int64, 'B' uint8, 'f' float32), as the pycc module's signatures require; else TypeError. */
static int take(PyObject *object, Py_buffer *view, char code, int ndim) {
    const char *format;
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) return -1;
    format = view->format ? view->format : "B";
    if (*format == '@' || *format == '=' || *format == '<') format++;
    if (view->ndim == ndim && format[0] != 0 && format[1] == 0
            && (format[0] == code || (code == 'q' && format[0] == 'l' && view->itemsize == 8))) return 0;
    PyBuffer_Release(view);
    PyErr_Format(PyExc_TypeError, "expected a C-contiguous, writable %d-d array of '%c' items", ndim, code);
    return -1;
}

static PyObject *finish(Py_buffer *views, int taken, int32_t status, const char *name) {
    int i;
    for (i = 0; i < taken; i++) PyBuffer_Release(&views[i]);
    if (PyErr_Occurred()) return NULL;
    if (status) return PyErr_Format(PyExc_RuntimeError, "sbif's compiled kernel %s failed (a bug: please report "
                                    "it)", name);
    Py_RETURN_NONE;
}

static int integers(PyObject *const *args, int count, int64_t *values) {
    int i;
    for (i = 0; i < count; i++) {
        values[i] = PyLong_AsLongLong(args[i]);
        if (values[i] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *execute(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer v[8];
    int64_t frame[5];
    int taken = 0;
    int32_t status = 0;
    if (nargs != 13) return PyErr_Format(PyExc_TypeError, "execute takes 13 arguments (%zd given)", nargs);
    if (integers(args + 1, 5, frame) < 0 || take(args[0], &v[0], 'q', 1) < 0) return NULL;
    for (taken = 1; taken < 8; taken++) if (take(args[5 + taken], &v[taken], 'B', 1) < 0) break;
    if (taken == 8) {
        Py_BEGIN_ALLOW_THREADS
        status = sbif_execute(v[0].buf, v[0].shape[0], frame[0], frame[1], frame[2], frame[3], frame[4],
                              v[1].buf, v[1].shape[0], v[2].buf, v[2].shape[0], v[3].buf, v[3].shape[0],
                              v[4].buf, v[4].shape[0], v[5].buf, v[5].shape[0], v[6].buf, v[6].shape[0],
                              v[7].buf, v[7].shape[0]);
        Py_END_ALLOW_THREADS
    }
    return finish(v, taken, status, "execute");
}

static PyObject *execute_one(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer v[3];
    int taken = 0;
    int32_t status = 0;
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "execute_one takes 3 arguments (%zd given)", nargs);
    if (take(args[0], &v[0], 'q', 1) < 0) return NULL;
    for (taken = 1; taken < 3; taken++) if (take(args[taken], &v[taken], 'B', 1) < 0) break;
    if (taken == 3) {
        Py_BEGIN_ALLOW_THREADS
        status = sbif_execute_one(v[0].buf, v[0].shape[0], v[1].buf, v[1].shape[0], v[2].buf, v[2].shape[0]);
        Py_END_ALLOW_THREADS
    }
    return finish(v, taken, status, "execute_one");
}

static PyObject *im2col(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer v[2];
    int64_t geometry[6];
    int taken = 0;
    int32_t status = 0;
    if (nargs != 8) return PyErr_Format(PyExc_TypeError, "im2col takes 8 arguments (%zd given)", nargs);
    if (integers(args + 2, 6, geometry) < 0 || take(args[0], &v[0], 'f', 4) < 0) return NULL;
    taken = take(args[1], &v[1], 'f', 4) < 0 ? 1 : 2;
    if (taken == 2) {
        Py_BEGIN_ALLOW_THREADS
        status = sbif_im2col(v[0].buf, v[0].shape[0], v[0].shape[1], v[0].shape[2], v[0].shape[3], v[1].buf,
                             v[1].shape[0], v[1].shape[1], v[1].shape[2], v[1].shape[3], geometry[0], geometry[1],
                             geometry[2], geometry[3], geometry[4], geometry[5]);
        Py_END_ALLOW_THREADS
    }
    return finish(v, taken, status, "im2col");
}

/* The lanes' entry points: their int64 arrays (mailbox, flags), then their ints. */
enum lane_entry { RUN_LANE, SERVE, PUBLISH, WAIT_CHANGE };
static const struct { const char *name; int arrays, ints; } lane_entries[] = {
    {"run_lane", 2, 1}, {"serve", 2, 2}, {"publish", 1, 2}, {"wait_change", 1, 3}};

static PyObject *lane_call(PyObject *const *args, Py_ssize_t nargs, enum lane_entry entry) {
    const char *name = lane_entries[entry].name;
    int arrays = lane_entries[entry].arrays, count = lane_entries[entry].ints, taken = 0;
    Py_buffer v[2];
    int64_t n[3];
    int32_t status = 0;
    if (nargs != arrays + count) return PyErr_Format(PyExc_TypeError, "%s takes %d arguments (%zd given)", name,
                                                     arrays + count, nargs);
    if (integers(args + arrays, count, n) < 0) return NULL;
    for (taken = 0; taken < arrays; taken++) if (take(args[taken], &v[taken], 'q', 1) < 0) break;
    if (taken == arrays) {
        Py_BEGIN_ALLOW_THREADS
        switch (entry) {
        case RUN_LANE: status = sbif_run_lane(v[0].buf, v[0].shape[0], v[1].buf, v[1].shape[0], n[0]); break;
        case SERVE: status = sbif_serve(v[0].buf, v[0].shape[0], v[1].buf, v[1].shape[0], n[0], n[1]); break;
        case PUBLISH: status = sbif_publish(v[0].buf, v[0].shape[0], n[0], n[1]); break;
        case WAIT_CHANGE: status = sbif_wait_change(v[0].buf, v[0].shape[0], n[0], n[1], n[2]); break;
        }
        Py_END_ALLOW_THREADS
    }
    return finish(v, taken, status, name);
}

static PyObject *run_lane(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return lane_call(args, nargs, RUN_LANE);
}

static PyObject *serve(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return lane_call(args, nargs, SERVE);
}

static PyObject *publish(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return lane_call(args, nargs, PUBLISH);
}

static PyObject *wait_change(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return lane_call(args, nargs, WAIT_CHANGE);
}

static PyMethodDef methods[] = {
    {"execute", (PyCFunction)(void (*)(void))execute, METH_FASTCALL, "kernels.execute"},
    {"execute_one", (PyCFunction)(void (*)(void))execute_one, METH_FASTCALL, "kernels.execute_one"},
    {"im2col", (PyCFunction)(void (*)(void))im2col, METH_FASTCALL, "kernels.im2col"},
    {"run_lane", (PyCFunction)(void (*)(void))run_lane, METH_FASTCALL, "kernels.run_lane"},
    {"serve", (PyCFunction)(void (*)(void))serve, METH_FASTCALL, "kernels.serve"},
    {"publish", (PyCFunction)(void (*)(void))publish, METH_FASTCALL, "kernels.publish"},
    {"wait_change", (PyCFunction)(void (*)(void))wait_change, METH_FASTCALL, "kernels.wait_change"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "@NAME@", NULL, -1, methods};

PyMODINIT_FUNC PyInit_@NAME@(void) { return PyModule_Create(&definition); }
"""


def module_name() -> str:
    """`sbif_cfunc_` and a digest of what the code depends on: all `cache.module_name()` covers (the kernels'
    sources, Python, NumPy, numba, llvmlite, the CPU) and this file (the cfuncs, `_SUPPORT` and `_GLUE`)."""
    digest = hashlib.sha256(cache.module_name().encode("ascii"))
    with open(os.path.abspath(__file__), "rb") as source:
        digest.update(source.read())
    return "sbif_cfunc_" + digest.hexdigest()[:20]


def module_path(directory: Optional[str] = None) -> str:
    """Where this machine's module is (or would be) kept: beside the pycc module, in `cache.cache_directory()`."""
    return os.path.join(directory or cache.cache_directory(), module_name() + importlib.machinery.EXTENSION_SUFFIXES[0])


def load(directory: Optional[str] = None) -> Optional[Kernels]:
    """The entry points from this machine's module if it has been built (else None). Raises aot.KernelsUnavailable
    if it exists but does not load."""
    path = module_path(directory)
    if not os.path.exists(path):
        return None
    name = module_name()
    module = sys.modules.get(name)
    if module is None:
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except (ImportError, OSError) as exc:
            raise aot.KernelsUnavailable("the compiled kernels in {} do not load ({}); delete the file to rebuild "
                                         "them".format(path, exc)) from None
        sys.modules[name] = module
    return Kernels(*(getattr(module, name) for name in Kernels._fields[:-1]), path)


def build(directory: Optional[str] = None) -> str:
    """Build this machine's module in a child process (numba's compiler stays out of the caller's process) and
    return its path. Raises aot.KernelsUnavailable with the child's last words when it fails."""
    directory = directory or cache.cache_directory()
    os.makedirs(directory, exist_ok=True)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]))
    done = subprocess.run([sys.executable, "-m", "sbif.runtime.numba.aot_cfunc", "--into", directory],
                          env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=aot.BUILD_TIMEOUT_SECONDS)
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["(no output)"]
    if done.returncode != 0:
        raise aot.KernelsUnavailable("building the cfunc kernels failed: {}".format(lines[-1]))
    return done.stdout.decode("utf-8").strip().splitlines()[-1]


def _entry_points() -> Dict[str, Any]:
    """The cfuncs (compiled here: importing numba), by exported name."""
    from numba import carray, cfunc, types
    from numba.core.dispatcher import Dispatcher

    # Code numba loads from its disk cache carries no LLVM IR to emit: the kernels are compiled here, uncached.
    if "sbif.runtime.numba.kernels" in sys.modules:
        raise aot.KernelsUnavailable("the kernels were imported before the build could turn their cache off")
    Dispatcher.enable_caching = lambda self: None
    from . import kernels

    size, address = types.int64, types.CPointer(types.uint8)
    program_type, image = types.CPointer(types.int64), types.CPointer(types.float32)

    @cfunc(types.int32(program_type, size, size, size, size, size, size, *(address, size) * 7))
    def sbif_execute(program, program_size, n, first, rows, out_first, out_rows, weights, weights_size, scratch,
                     scratch_size, outputs, outputs_size, input0, input0_size, input1, input1_size, input2,
                     input2_size, input3, input3_size):
        try:
            kernels.execute(carray(program, program_size), n, first, rows, out_first, out_rows,
                            carray(weights, weights_size), carray(scratch, scratch_size),
                            carray(outputs, outputs_size), carray(input0, input0_size),
                            carray(input1, input1_size), carray(input2, input2_size), carray(input3, input3_size))
        except Exception:  # (numba catches every exception class here)
            return 1
        return 0

    @cfunc(types.int32(program_type, size, address, size, address, size))
    def sbif_execute_one(program, program_size, weights, weights_size, arena, arena_size):
        try:
            kernels.execute_one(carray(program, program_size), carray(weights, weights_size),
                                carray(arena, arena_size))
        except Exception:
            return 1
        return 0

    @cfunc(types.int32(image, size, size, size, size, image, size, size, size, size, *(size,) * 6))
    def sbif_im2col(x, x0, x1, x2, x3, columns, c0, c1, c2, c3, kernel_h, kernel_w, stride_h, stride_w, pad_top,
                    pad_left):
        try:
            kernels.im2col(carray(x, (x0, x1, x2, x3)), carray(columns, (c0, c1, c2, c3)), kernel_h, kernel_w,
                           stride_h, stride_w, pad_top, pad_left)
        except Exception:
            return 1
        return 0

    @cfunc(types.int32(program_type, size, program_type, size, size))
    def sbif_run_lane(mailbox, mailbox_size, flags, flags_size, lane):
        try:
            kernels.run_lane(carray(mailbox, mailbox_size), carray(flags, flags_size), lane)
        except Exception:
            return 1
        return 0

    @cfunc(types.int32(program_type, size, program_type, size, size, size))
    def sbif_serve(mailbox, mailbox_size, flags, flags_size, lane, pauses):
        try:
            kernels.serve(carray(mailbox, mailbox_size), carray(flags, flags_size), lane, pauses)
        except Exception:
            return 1
        return 0

    @cfunc(types.int32(program_type, size, size, size))
    def sbif_publish(flags, flags_size, index, value):
        try:
            kernels.publish(carray(flags, flags_size), index, value)
        except Exception:
            return 1
        return 0

    @cfunc(types.int32(program_type, size, size, size, size))
    def sbif_wait_change(flags, flags_size, index, old, pauses):
        try:
            kernels.wait_change(carray(flags, flags_size), index, old, pauses)
        except Exception:
            return 1
        return 0

    return {"sbif_execute": sbif_execute, "sbif_execute_one": sbif_execute_one, "sbif_im2col": sbif_im2col,
            "sbif_run_lane": sbif_run_lane, "sbif_serve": sbif_serve, "sbif_publish": sbif_publish,
            "sbif_wait_change": sbif_wait_change}


def _build_here(directory: str) -> str:
    """The build itself (in the child): cfuncs -> one LLVM module -> an object for this CPU -> an extension module."""
    import llvmlite.binding as llvm

    merged = None
    exported = []
    for name, entry in _entry_points().items():
        module = llvm.parse_bitcode(entry._library._final_module.as_bitcode())  # a copy the JIT does not own
        module.get_function(entry.native_name).name = name
        exported.append(name)
        if merged is None:
            merged = module
        else:
            merged.link_in(module)  # the kernels each links in are linkonce_odr: kept once
    for function in merged.functions:  # only the entry points are the object's interface
        if not function.is_declaration and function.name not in exported and str(function.linkage) not in (
                "Linkage.private", "Linkage.internal"):
            function.visibility = "hidden"
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3, reloc="pic",
        codemodel="default")
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        raise aot.KernelsUnavailable("Python's headers are missing ({}): on Debian/Ubuntu apt install "
                                     "python3-dev".format(include))
    compiler = os.environ.get(COMPILER_ENV, "").strip() or "cc"
    if shutil.which(compiler) is None:
        raise aot.KernelsUnavailable("no C compiler found ({}): the module is linked with one".format(compiler))
    name, target = module_name(), module_path(directory)
    with tempfile.TemporaryDirectory(prefix=name + ".", dir=directory) as work:
        sources = {"kernels.o": machine.emit_object(merged), "support.c": _SUPPORT.encode("ascii"),
                   "glue.c": _GLUE.replace("@NAME@", name).encode("ascii")}
        for file_name, content in sources.items():
            with open(os.path.join(work, file_name), "wb") as written:
                written.write(content)
        built = os.path.join(work, os.path.basename(target))
        linked = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-I", include, "-o", built]
                                + [os.path.join(work, file_name) for file_name in sources] + ["-lm"],
                                stderr=subprocess.PIPE)
        if linked.returncode != 0:
            raise aot.KernelsUnavailable("linking failed: {}".format(
                linked.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]))
        ctypes.CDLL(built)  # every symbol resolves (bound now), or OSError names the missing one
        os.replace(built, target)
    return target


def main(argv: Optional[List[str]] = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["--into"]:
        try:
            print(_build_here(arguments[1]))
        except (aot.KernelsUnavailable, OSError) as exc:
            print("error: {}".format(exc), file=sys.stderr)
            return 1
        return 0
    path = module_path()
    try:
        if not os.path.exists(path):
            path = build()
    except aot.KernelsUnavailable as exc:
        print("error: {}".format(exc), file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
