"""The diffusion engine: model, loader, sampler, server (installed as mercury_lsp.engine)."""

import os
import sys

# Before torch loads MKL, which reads this once: MKL's own memory manager keeps every GEMM's packing buffers for
# reuse and never hands them back (24-34 MB under three clients, bench/RESULTS.md, issue 21's sixth round); without
# it they come from glibc's heap like any tensor and go back at its trims. A value the user set (even empty) wins;
# a process that imported torch first keeps MKL's default.
if "torch" not in sys.modules:
    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")
