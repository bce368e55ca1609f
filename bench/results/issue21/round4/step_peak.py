"""Peak RSS over six steps of a batch of three requests (3,500-character prefixes, 800-character suffixes from
bench/engine_cpu.py's file), above what the engine held before them (after a malloc_trim), in process, one thread;
blocks (64 tokens) then single lines (16), two rounds each. Run under a memory variant to compare:

    PYTHONPATH=bench/memory_variants MERCURY_MEMORY_VARIANT=round3 python bench/results/issue21/round4/step_peak.py
"""
import ctypes, sys, torch
sys.path.insert(0, "bench")
from workload import SOURCE_FILE
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import InfillEngine, EngineSettings, InfillRequest
from mercury_lsp.models import resolve_model_path
torch.set_num_threads(1)
libc = ctypes.CDLL("libc.so.6")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key): return int(line.split()[1]) / 1024
kw = {"context_dtype": sys.argv[1]} if len(sys.argv) > 1 else {}  # or a dtype by name
loaded = load_checkpoint(resolve_model_path(None), device="cpu")
engine = InfillEngine(loaded, EngineSettings(**kw))
text = SOURCE_FILE.read_text()
for width, single in ((64, False), (16, True)):
    for round_ in range(2):
        cuts = [4000 + 300 * round_, 9000, 15000]
        jobs = [j for c in cuts for j in engine.start(InfillRequest(prefix=text[c-3500:c], suffix=text[c:c+800], max_tokens=width, single_line=single, steps=6))]
        libc.malloc_trim(0)
        before = status("VmRSS:")
        open("/proc/self/clear_refs", "w").write("5")
        for _ in range(6):
            engine.step(jobs)
        peak = status("VmHWM:")
        engine.release(jobs)
        print(f"width {width} round {round_}: before {before:.0f} MB, peak over it {peak - before:.1f} MB")
