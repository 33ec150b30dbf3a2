"""Deterministic 'tokenizer' and text generator.

A token is a word or a single punctuation character. Generated tokens are
words picked by hashing (prompt, seed, position), so the same request always
gives the same text.
"""

import hashlib
import re

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

VOCAB = (
    "the of and to in is that for it as with was on be by this are from at "
    "or an which have not has but can more one all will their model data "
    "system new time also these other into been its may such use some than "
    "only would first two very through each many over most between same "
    "compute memory network cluster token expert layer attention cache "
    "inference parallel tensor node rank device server future research "
    "language learning reasoning human world energy science open future "
    "scale latency throughput quality safety progress careful clear simple"
).split()


def count_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text or ""))


def chat_prompt(messages) -> str:
    """Flatten chat messages the way a chat template would (roughly)."""
    parts = []
    for m in messages or []:
        content = m.get("content", "") if isinstance(m, dict) else str(m)
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        role = m.get("role", "user") if isinstance(m, dict) else "user"
        parts.append(f"<|{role}|> {content}")
    parts.append("<|assistant|>")
    return "\n".join(parts)


def generate_tokens(prompt: str, n: int, seed: int = 0):
    """Return ``n`` deterministic tokens (each with a leading space)."""
    base = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    out = []
    for i in range(n):
        h = hashlib.sha256(base + i.to_bytes(4, "big")).digest()
        out.append(" " + VOCAB[int.from_bytes(h[:4], "big") % len(VOCAB)])
    return out


def random_prompt(rng, n_tokens: int) -> str:
    """A prompt of exactly ``n_tokens`` tokens (for the bench's random set)."""
    return " ".join(rng.choice(VOCAB) for _ in range(max(1, n_tokens)))
