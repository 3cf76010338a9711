"""Data for the experiments: a character corpus read from Python's own standard library, and
synthetic tasks (copy, reverse, associative recall, selective copying, in-context regression).

Everything is generated locally and deterministically: nothing is downloaded. Token tasks
return (x, y) pairs of int64 tensors (B, N) where y[b, t] is the token the model should output
at position t, or IGNORE (-100, skipped by torch's cross_entropy) where nothing is scored.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Sequence
from pathlib import Path

import torch

from ._validate import require_positive_int

__all__ = [
    "CHAR_VOCAB",
    "IGNORE",
    "AssociativeRecallTask",
    "CharCorpus",
    "CopyTask",
    "LinearRegressionTask",
    "ReverseTask",
    "SelectiveCopyTask",
    "Task",
    "stdlib_corpus",
    "stdlib_source_text",
    "unigram_entropy",
]

IGNORE = -100  # target value that torch.nn.functional.cross_entropy skips (its ignore_index)

# Newline plus the 95 printable ASCII characters (space .. ~): a fixed, data-independent vocabulary.
CHAR_VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))


def _generator(generator: torch.Generator | None, fallback: torch.Generator) -> torch.Generator:
    return fallback if generator is None else generator


class CharCorpus:
    """A text as a sequence of character ids over CHAR_VOCAB, split into train and validation parts.

    encode(str) -> list[int], decode(ids) -> str; data: int64 tensor of the whole text;
    batch(batch_size, block_size, generator, split) draws random windows for next-character
    prediction.
    """

    def __init__(self, text: str, val_fraction: float = 0.1):
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.chars = CHAR_VOCAB
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.text = text
        self.data = torch.tensor(self.encode(text), dtype=torch.long)
        n_val = int(len(self.data) * val_fraction)
        self.train_data = self.data[: len(self.data) - n_val]
        self.val_data = self.data[len(self.data) - n_val :]

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Character ids of `text`; every character must be in CHAR_VOCAB."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as err:
            raise ValueError(
                f"text contains {err.args[0]!r}, which is not in the corpus vocabulary"
            ) from None

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of a sequence of ids (list or 1-D tensor)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)

    def batch(
        self,
        batch_size: int,
        block_size: int,
        generator: torch.Generator | None = None,
        split: str = "train",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows x (B, block_size) and the next characters y = x shifted by one."""
        require_positive_int("batch_size", batch_size)
        require_positive_int("block_size", block_size)
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        data = self.train_data if split == "train" else self.val_data
        if len(data) <= block_size:
            raise ValueError(
                f"block_size={block_size} must be smaller than the {split} split ({len(data)} chars)"
            )
        starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
        x = torch.stack([data[s : s + block_size] for s in starts.tolist()])
        y = torch.stack([data[s + 1 : s + block_size + 1] for s in starts.tolist()])
        return x, y

    def __repr__(self) -> str:
        return f"CharCorpus({len(self.data)} chars, vocab_size={self.vocab_size})"


def stdlib_source_text(max_chars: int = 1_000_000) -> str:
    """Source code of the standard library's top-level .py files, in sorted order, cleaned to CHAR_VOCAB.

    Tabs become four spaces and any other character outside the vocabulary is dropped; each file
    starts with a "# file: name.py" line. The text is cut at max_chars. The same Python
    installation always gives the same text (other Python versions ship other sources).
    """
    max_chars = require_positive_int("max_chars", max_chars)
    folder = Path(sysconfig.get_path("stdlib"))
    files = sorted(folder.glob("*.py"))
    if not files:
        raise FileNotFoundError(f"no .py files in the standard library folder {folder}")
    allowed = set(CHAR_VOCAB)
    parts, total = [], 0
    for path in files:
        raw = (
            path.read_text(encoding="utf-8", errors="replace")
            .replace("\r\n", "\n")
            .replace("\t", "    ")
        )
        part = f"# file: {path.name}\n" + "".join(ch for ch in raw if ch in allowed)
        parts.append(part)
        total += len(part)
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def stdlib_corpus(max_chars: int = 1_000_000, val_fraction: float = 0.1) -> CharCorpus:
    """The character corpus of stdlib_source_text(max_chars), last val_fraction held out."""
    return CharCorpus(stdlib_source_text(max_chars), val_fraction)


def unigram_entropy(tokens: torch.Tensor | Sequence[int], vocab_size: int | None = None) -> float:
    """Entropy in nats of the token frequencies: the loss of the best model that ignores context."""
    tokens = torch.as_tensor(tokens).flatten()
    tokens = tokens[tokens != IGNORE]
    if tokens.numel() == 0:
        raise ValueError("tokens must contain at least one token (IGNORE entries do not count)")
    counts = torch.bincount(tokens, minlength=vocab_size or 0).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


class Task:
    """A synthetic task: batch(batch_size, generator) -> (x, y), reproducible from a seed.

    Without a generator, batches come from the task's own generator seeded with `seed`, so the
    sequence of batches is the same on every run. vocab_size and seq_len size the model.
    """

    vocab_size: int
    seq_len: int

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def batch(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        require_positive_int("batch_size", batch_size)
        return self._make(batch_size, _generator(generator, self.generator))

    def _make(self, batch_size: int, g: torch.Generator):
        raise NotImplementedError


class CopyTask(Task):
    """Copy a random string after a separator: a_1..a_L SEP a_1..a_L (Graves et al. 2014).

    Symbols are 0..n_symbols-1, SEP = n_symbols. Only the copied half is scored.
    """

    def __init__(self, length: int = 8, n_symbols: int = 8, seed: int = 0):
        super().__init__(seed)
        self.length = require_positive_int("length", length)
        self.n_symbols = require_positive_int("n_symbols", n_symbols)
        self.sep = n_symbols
        self.vocab_size = n_symbols + 1
        self.seq_len = 2 * length

    def _second_half(self, first: torch.Tensor) -> torch.Tensor:
        return first

    def _make(self, batch_size, g):
        first = torch.randint(0, self.n_symbols, (batch_size, self.length), generator=g)
        sep = torch.full((batch_size, 1), self.sep)
        seq = torch.cat([first, sep, self._second_half(first)], dim=1)
        x, y = seq[:, :-1], seq[:, 1:].clone()
        y[:, : self.length] = IGNORE  # the first half is random: nothing to predict
        return x, y


class ReverseTask(CopyTask):
    """Like CopyTask, but the string is written back reversed: a_1..a_L SEP a_L..a_1."""

    def _second_half(self, first: torch.Tensor) -> torch.Tensor:
        return first.flip(1)


class AssociativeRecallTask(Task):
    """Key-value pairs then a query key; the answer is its value (Ba et al. 2016; Fu et al. 2023, H3).

    Sequence k_1 v_1 ... k_n v_n q v_q with distinct keys in [0, n_keys) and values in
    [n_keys, n_keys + n_values); only the final answer is scored.
    """

    def __init__(self, n_pairs: int = 4, n_keys: int = 16, n_values: int = 16, seed: int = 0):
        super().__init__(seed)
        self.n_pairs = require_positive_int("n_pairs", n_pairs)
        self.n_keys = require_positive_int("n_keys", n_keys)
        self.n_values = require_positive_int("n_values", n_values)
        if n_pairs > n_keys:
            raise ValueError(
                f"n_pairs={n_pairs} distinct keys need n_keys >= n_pairs, got n_keys={n_keys}"
            )
        self.vocab_size = n_keys + n_values
        self.seq_len = 2 * n_pairs + 1

    def _make(self, batch_size, g):
        keys = torch.stack(
            [torch.randperm(self.n_keys, generator=g)[: self.n_pairs] for _ in range(batch_size)]
        )
        values = self.n_keys + torch.randint(
            0, self.n_values, (batch_size, self.n_pairs), generator=g
        )
        which = torch.randint(0, self.n_pairs, (batch_size, 1), generator=g)
        pairs = torch.stack([keys, values], dim=2).flatten(1)  # k1 v1 k2 v2 ...
        seq = torch.cat([pairs, keys.gather(1, which), values.gather(1, which)], dim=1)
        x, y = seq[:, :-1], torch.full_like(seq[:, 1:], IGNORE)
        y[:, -1] = seq[:, -1]
        return x, y


class SelectiveCopyTask(Task):
    """Selective copying (Gu & Dao 2023, Mamba): remember the symbols scattered among noise.

    A region of `region_len` positions holds n_memorize symbols at random positions (blank
    token 0 elsewhere); then n_memorize marker tokens (1) ask for the symbols in order.
    Symbols are 2..n_symbols+1; only the marker positions are scored.
    """

    BLANK, MARKER = 0, 1

    def __init__(
        self, n_memorize: int = 4, region_len: int = 16, n_symbols: int = 8, seed: int = 0
    ):
        super().__init__(seed)
        self.n_memorize = require_positive_int("n_memorize", n_memorize)
        self.region_len = require_positive_int("region_len", region_len)
        self.n_symbols = require_positive_int("n_symbols", n_symbols)
        if n_memorize > region_len:
            raise ValueError(f"n_memorize={n_memorize} must be <= region_len={region_len}")
        self.vocab_size = n_symbols + 2
        self.seq_len = region_len + n_memorize

    def _make(self, batch_size, g):
        symbols = 2 + torch.randint(0, self.n_symbols, (batch_size, self.n_memorize), generator=g)
        region = torch.full((batch_size, self.region_len), self.BLANK)
        for b in range(batch_size):
            where = torch.randperm(self.region_len, generator=g)[: self.n_memorize].sort().values
            region[b, where] = symbols[b]
        markers = torch.full((batch_size, self.n_memorize), self.MARKER)
        x = torch.cat([region, markers], dim=1)
        y = torch.full_like(x, IGNORE)
        y[:, self.region_len :] = symbols
        return x, y


class LinearRegressionTask(Task):
    """In-context linear regression (Garg et al. 2022; von Oswald et al. 2023).

    Each sequence has its own w ~ N(0, I_d); x_i ~ N(0, I_d), y_i = w . x_i + noise.
    batch() returns tokens (B, n_points + 1, d + 1), rows [x_i, y_i] followed by the query
    row [x_query, 0], and the target y_query (B,). With return_w=True also w (B, d).
    """

    def __init__(self, d: int = 4, n_points: int = 16, noise_std: float = 0.0, seed: int = 0):
        super().__init__(seed)
        self.d = require_positive_int("d", d)
        self.n_points = require_positive_int("n_points", n_points)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = noise_std
        self.vocab_size = None  # continuous tokens
        self.seq_len = n_points + 1
        self.token_dim = d + 1

    def batch(
        self, batch_size: int, generator: torch.Generator | None = None, return_w: bool = False
    ) -> tuple[torch.Tensor, ...]:
        require_positive_int("batch_size", batch_size)
        g = _generator(generator, self.generator)
        w = torch.randn(batch_size, self.d, generator=g)
        x = torch.randn(batch_size, self.n_points + 1, self.d, generator=g)
        y = (x @ w[:, :, None])[..., 0]
        y = y + self.noise_std * torch.randn(y.shape, generator=g)
        tokens = torch.cat([x, y[..., None]], dim=-1)
        tokens[:, -1, -1] = 0.0  # the query's label is what the model must predict
        return (tokens, y[:, -1], w) if return_w else (tokens, y[:, -1])
