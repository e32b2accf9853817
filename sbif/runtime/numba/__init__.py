"""The numba backend: an SBIF graph lowered to a flat program (`program`, in the encoding of `encoding`) that one
compiled interpreter (`kernels`) runs, built once per machine ahead of time (`aot`) and driven by `backend`'s
NumbaExecutor. Imported only when the numba backend is chosen (`sbif.runtime.backends`)."""
