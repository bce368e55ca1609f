"""Ad-hoc: a process's resident memory (MB) by mapping: the slot regions (the one ~400 MB anonymous VMA they merge
into), glibc arenas (64 MB VMAs), brk heap, other anonymous, torch's files, other files."""
import sys
import time
from pathlib import Path


def groups(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            size = (hi - lo) / 2**20
            path = parts[5] if len(parts) > 5 else ""
            if path == "[heap]":
                name = "brk"
            elif path.startswith("/"):
                name = "torch files" if "/torch/" in path else "other files"
            elif path:
                name = path
            elif size > 300:
                name = "slots"
            elif 63.5 < size <= 64.01 or 60 < size < 64:
                name = "arenas"
            else:
                name = "anon other"
        elif parts[0] == "Rss:":
            out[name] = out.get(name, 0) + int(parts[1]) / 1024
    return out


pid, every = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0
while True:
    g = groups(pid)
    print(time.strftime("%H:%M:%S"), f"total {sum(g.values()):.0f} |",
          " | ".join(f"{k} {v:.0f}" for k, v in sorted(g.items())), flush=True)
    if not every:
        break
    time.sleep(every)
