"""Text to token ids: a small documented tokeniser and a vocabulary built on training text only.

Tokenisation (``word``, the default): lowercase, then words (letters/digits, keeping inner
apostrophes: ``didn't`` is one token) and every punctuation character as its own token.
``char``: every character, with runs of whitespace collapsed to one space.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Optional

import torch
from torch.nn.utils.rnn import pad_sequence

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

Level = Literal["word", "char"]
_WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str, level: Level = "word", lowercase: bool = True) -> list[str]:
    # curly apostrophes are common in scraped reviews; "don’t" and "don't" should be one token
    text = text.replace("\u2019", "'")
    if lowercase:
        text = text.lower()
    if level == "char":
        return list(" ".join(text.split()))
    return _WORD.findall(text)


@dataclass
class Vocab:
    """Token <-> id. Id 0 is padding and id 1 the unknown token; the rest by frequency."""

    tokens: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[list[str]], min_freq: int = 1, max_size: Optional[int] = None) -> "Vocab":
        """From tokenised training texts: tokens seen at least ``min_freq`` times, the ``max_size``
        most frequent of them (ties broken alphabetically, so the mapping is deterministic)."""
        counts = Counter(tok for toks in texts for tok in toks)
        kept = sorted((tok for tok, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept[:max_size]])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(tok, UNK_ID) for tok in tokens]

    def to_json(self) -> dict[str, Any]:
        return {"pad": PAD, "unk": UNK, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: Any) -> "Vocab":
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if (not isinstance(tokens, list) or len(tokens) < 2 or tokens[:2] != [PAD, UNK]
                or not all(isinstance(t, str) for t in tokens)):
            raise ValueError(f"expected {{'tokens': ['{PAD}', '{UNK}', ...]}}")
        return cls(tokens)


def pad_ids(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, longest) int64 ids padded with PAD_ID, and the lengths as a CPU int64 tensor."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    ids = pad_sequence([torch.tensor(s, dtype=torch.int64) for s in sequences], batch_first=True,
                       padding_value=PAD_ID)
    return ids, lengths
