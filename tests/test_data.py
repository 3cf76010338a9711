"""attnlab.data: the standard-library character corpus and the synthetic tasks."""

import math
import sysconfig
from collections import Counter
from pathlib import Path

import attnlab
import numpy as np
import pytest
import torch
from attnlab.data import (
    CHAR_VOCAB,
    IGNORE,
    AssociativeRecallTask,
    CharCorpus,
    CopyTask,
    LinearRegressionTask,
    ReverseTask,
    SelectiveCopyTask,
    stdlib_corpus,
    stdlib_source_text,
    unigram_entropy,
)


def test_stdlib_text_is_deterministic_printable_and_capped():
    a, b = stdlib_source_text(50_000), stdlib_source_text(50_000)
    assert a == b and len(a) == 50_000
    assert set(a) <= set(CHAR_VOCAB)
    first = min(Path(sysconfig.get_path("stdlib")).glob("*.py"))
    assert a.startswith(f"# file: {first.name}\n")
    source = first.read_text(encoding="utf-8").replace("\t", "    ")
    expected = "".join(ch for ch in source if ch in set(CHAR_VOCAB))
    assert a[len(f"# file: {first.name}\n") :].startswith(expected[:500])


def test_vocabulary_is_newline_plus_printable_ascii():
    assert len(CHAR_VOCAB) == 96 and len(set(CHAR_VOCAB)) == 96
    assert CHAR_VOCAB[0] == "\n" and all(ch.isprintable() and ch.isascii() for ch in CHAR_VOCAB[1:])


def test_encode_decode_round_trip_and_errors():
    corpus = stdlib_corpus(20_000)
    text = "def f(x):\n    return x ** 2  # ~!"
    ids = corpus.encode(text)
    assert corpus.decode(ids) == text and corpus.decode(torch.tensor(ids)) == text
    assert corpus.decode(corpus.data[:300]) == corpus.text[:300]
    with pytest.raises(ValueError, match="'é'"):
        corpus.encode("café")


def test_corpus_split_and_batches():
    corpus = stdlib_corpus(20_000, val_fraction=0.1)
    assert len(corpus.train_data) == 18_000 and len(corpus.val_data) == 2_000
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x, y = corpus.batch(4, 32, g1)
    x2, y2 = corpus.batch(4, 32, g2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == y.shape == (4, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one character
    text = corpus.decode(corpus.train_data)
    for row in torch.cat([x, y[:, -1:]], dim=1):
        assert corpus.decode(row) in text
    xv, _ = corpus.batch(2, 16, g1, split="val")
    assert corpus.decode(xv[0]) in corpus.decode(corpus.val_data)
    with pytest.raises(ValueError, match="block_size=5000 must be smaller than the val split"):
        corpus.batch(1, 5000, split="val")


def test_unigram_entropy_matches_counting():
    tokens = torch.tensor([0, 1, 1, 2, 2, 2, 2, IGNORE])
    p = np.array([1, 2, 4]) / 7
    assert unigram_entropy(tokens) == pytest.approx(float(-(p * np.log(p)).sum()))
    corpus = CharCorpus("abcd" * 10)
    assert unigram_entropy(corpus.data) == pytest.approx(math.log(4))


def test_copy_and_reverse_tasks():
    for task_cls, transform in ((CopyTask, lambda s: s), (ReverseTask, lambda s: s[::-1])):
        task = task_cls(length=5, n_symbols=7, seed=3)
        x, y = task.batch(16)
        assert x.shape == y.shape == (16, task.seq_len) and task.vocab_size == 8
        for row_x, row_y in zip(x.tolist(), y.tolist()):
            first = row_x[:5]
            assert row_x[5] == 7 and max(first) < 7
            assert row_y[:5] == [IGNORE] * 5
            assert row_y[5:] == transform(first)  # predicted after SEP, one per position
            assert row_x[6:] == transform(first)[:-1]


def test_tasks_are_reproducible_from_their_seed():
    a1, a2 = CopyTask(seed=1).batch(8), CopyTask(seed=1).batch(8)
    b = CopyTask(seed=2).batch(8)
    assert torch.equal(a1[0], a2[0]) and not torch.equal(a1[0], b[0])
    task = AssociativeRecallTask(seed=0)
    first, second = task.batch(4), task.batch(4)
    assert not torch.equal(first[0], second[0])  # the task's generator moves on


def test_associative_recall_answer_is_the_value_of_the_query_key():
    task = AssociativeRecallTask(n_pairs=5, n_keys=10, n_values=6, seed=0)
    x, y = task.batch(32)
    assert x.shape == (32, 11) and task.vocab_size == 16
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        keys, values = row_x[0:10:2], row_x[1:10:2]
        assert len(set(keys)) == 5 and max(keys) < 10 and min(values) >= 10
        lookup = dict(zip(keys, values))
        assert row_x[10] in lookup
        assert row_y[:-1] == [IGNORE] * 10 and row_y[-1] == lookup[row_x[10]]


def test_selective_copy_targets_are_the_scattered_symbols_in_order():
    task = SelectiveCopyTask(n_memorize=3, region_len=12, n_symbols=5, seed=0)
    x, y = task.batch(32)
    assert x.shape == y.shape == (32, 15) and task.vocab_size == 7
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        symbols = [t for t in row_x[:12] if t != SelectiveCopyTask.BLANK]
        assert len(symbols) == 3 and all(2 <= s < 7 for s in symbols)
        assert row_x[12:] == [SelectiveCopyTask.MARKER] * 3
        assert row_y[:12] == [IGNORE] * 12 and row_y[12:] == symbols


def test_linear_regression_tokens_and_targets():
    task = LinearRegressionTask(d=3, n_points=6, seed=0)
    tokens, target, w = task.batch(5, return_w=True)
    assert tokens.shape == (5, 7, 4) and target.shape == (5,) and w.shape == (5, 3)
    x, y = tokens[..., :3], tokens[..., 3]
    torch.testing.assert_close(y[:, :-1], (x[:, :-1] @ w[:, :, None])[..., 0])
    torch.testing.assert_close(target, (x[:, -1] * w).sum(-1))
    assert (y[:, -1] == 0).all()
    # the same layout as attnlab.icl_tokens (rows [x_i, y_i], then [x_query, 0])
    ref = attnlab.icl_tokens(x[0, :-1].numpy(), y[0, :-1].numpy(), x[0, -1:].numpy())
    np.testing.assert_allclose(tokens[0].numpy(), ref, atol=1e-7)
    _noisy_tokens, noisy_target = LinearRegressionTask(
        d=3, n_points=6, noise_std=0.5, seed=0
    ).batch(5)
    assert not torch.allclose(noisy_target, target)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: AssociativeRecallTask(n_pairs=8, n_keys=4), "n_keys >= n_pairs"),
        (
            lambda: SelectiveCopyTask(n_memorize=9, region_len=4),
            "n_memorize=9 must be <= region_len=4",
        ),
        (lambda: CopyTask(length=0), "length must be a positive integer"),
        (lambda: CopyTask().batch(0), "batch_size must be a positive integer"),
        (lambda: LinearRegressionTask(noise_std=-1), "noise_std must be >= 0"),
    ],
)
def test_task_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_character_counts_agree_with_collections_counter():
    corpus = stdlib_corpus(5_000)
    counts = Counter(corpus.text)
    p = np.array(list(counts.values())) / len(corpus.text)
    assert unigram_entropy(corpus.data) == pytest.approx(float(-(p * np.log(p)).sum()))
