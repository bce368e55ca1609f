"""How often a draft copied from the buffer could speed up a held-out single-line hole: the ceiling of prompt-lookup
("speculative") drafts before building them into the engine.

    python bench/buffer_drafts.py [--single 150] [--seed 0]

For each hole of `mercury-engine eval` (same draw), the last 4, 3 or 2 prefix tokens before the one under the cursor
are looked up earlier in the prefix (the latest occurrence, the longest key first); the text that followed it,
when it starts with what is typed of the cursor's token, is the draft. Counted: holes with a draft, drafts whose
first token is the answer's, drafts that hold the whole answer. A draft can only save steps where it is right, so
the last two columns bound what verifying drafts could gain.
"""

from __future__ import annotations

import argparse

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.training.evaluate import heldout_holes
from mercury_lsp.models import BUNDLED_MODEL

PREFIX_CHARS = 4000  # about the language server's 1,024-token prefix


def buffer_draft(prefix_ids: list[int], length: int) -> list[int] | None:
    """The tokens after the latest earlier occurrence of the prefix's last 4, 3 or 2 tokens (longest key first)."""
    for key_length in (4, 3, 2):
        key = prefix_ids[-key_length:]
        for start in range(len(prefix_ids) - key_length - 1, -1, -1):
            if prefix_ids[start : start + key_length] == key:
                return prefix_ids[start + key_length : start + key_length + length]
    return None


def draft_text(vocab, prefix: str, truth_tokens: int) -> str | None:
    """The buffer's draft of what follows the cursor, as text. The key leaves out the token under the cursor (the
    engine heals it: its characters are typed, the rest is open), so the draft must start with those characters."""
    ids = vocab.encode(prefix[-PREFIX_CHARS:])
    if len(ids) < 3:
        return None
    typed = vocab.decode(ids[-1:])
    draft = buffer_draft(ids[:-1], truth_tokens + 2)
    if draft is None:
        return None
    text = vocab.decode(draft)
    return text[len(typed):] if text.startswith(typed) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--single", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    vocab = load_checkpoint(BUNDLED_MODEL, device="cpu").vocab
    holes = heldout_holes(args.single, 0, seed=args.seed)
    found = first_token = whole = 0
    for hole in holes:
        truth = hole.truth.rstrip()
        text = draft_text(vocab, hole.prefix, len(vocab.encode(truth)))
        if text is None:
            continue
        found += 1
        first = vocab.decode(vocab.encode(truth)[:1]) if truth else ""
        first_token += bool(first) and text.startswith(first)
        whole += bool(truth) and text.startswith(truth)
    print("| holes | with a draft | its first token right | the whole answer right |\n|---|---|---|---|")
    print(f"| {len(holes)} | {found} | {first_token} | {whole} |")


if __name__ == "__main__":
    main()
