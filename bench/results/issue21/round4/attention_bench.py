"""The CPU attention (kernels/attention.py's reference, what a CPU runs) against the third round's, in process, one
thread, the bundled model's heads (8 x 64) over a 1,024-position slot: canvases of 17 and 65 (a line's and a
block's window), long windows (a prefix tail and suffix), one row and three; float32 and bfloat16 contexts.
Median of 6 calls each, the two alternated.

    python bench/results/issue21/round4/attention_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from mercury_lsp.kernels.attention import canvas_attention_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "memory_variants"))
from sitecustomize import gathered_and_concatenated  # noqa: E402 (the third round's; no variant is applied)


def main() -> None:
    torch.set_num_threads(1)
    heads, dim, capacity, slots = 8, 64, 1024, 17
    k_cache, v_cache = torch.randn(2, slots, heads, capacity, dim).unbind(0)
    print("| rows | window | context | dtype | third round ms | now ms | now / third round |\n|---|---|---|---|---|---|---|")
    for batch, canvas, context in [(1, 17, 900), (1, 65, 900), (1, 400, 600), (1, 900, 64), (3, 17, 900),
                                   (3, 65, 900)]:
        for dtype in (torch.float32, torch.bfloat16):
            q = torch.randn(batch, canvas, heads, dim).transpose(1, 2)  # a view of the projection, as in the model
            k_new, v_new = torch.randn(2, batch, canvas, heads, dim).transpose(2, 3).unbind(0)
            k, v = k_cache.to(dtype), v_cache.to(dtype)
            ctx_len, new_len = torch.full((batch,), context), torch.full((batch,), canvas)
            if batch == 1:  # one request: its slot as a view
                args = (q, k[:1, :, :context], v[:1, :, :context], ctx_len, k_new, v_new, new_len, 0.125)
            else:  # several: rows name their slots
                args = (q, k[:, :, :context], v[:, :, :context], ctx_len, k_new, v_new, new_len, 0.125,
                        torch.arange(batch) * 2)
            times = {"old": [], "new": []}
            for round_ in range(12):
                pair = (("old", gathered_and_concatenated), ("new", canvas_attention_reference))
                for name, fn in pair if round_ % 2 else pair[::-1]:
                    started = time.perf_counter()
                    fn(*args)
                    times[name].append(time.perf_counter() - started)
            old, new = (sorted(times[n])[6] * 1000 for n in ("old", "new"))
            print(f"| {batch} | {canvas} | {context} | {str(dtype).removeprefix('torch.')} | {old:.2f} | {new:.2f} | "
                  f"{new / old:.2f} |")


if __name__ == "__main__":
    main()
