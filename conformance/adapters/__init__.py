"""Runtimes as protocol executables: the NumPy reference runtime (`sbif_numpy`) and SB2 itself (`sb2_live`)."""
