"""Zone 1 library pieces: the fossil table (checked against counted FLOPs and a dependency
graph) and the scaling statistics (checked against torch softmax, entropy and autograd)."""

from __future__ import annotations

import math

import attnlab
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode


def _row(rows, prefix):
    return next(r for r in rows if r["layer"].startswith(prefix))


def _counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("n, d", [(6, 4), (12, 8)])
def test_fossil_ops_equal_counted_multiply_adds(n, d):
    """torch's FLOP counter (2 FLOPs per multiply-add) on each layer run for real."""
    rows = attnlab.fossil_table(n, d, k=3)
    x = torch.randn(n, d)
    w_x, w_h = torch.randn(d, d), torch.randn(d, d)

    def rnn():
        h = torch.zeros(1, d)
        for t in range(n):  # one step after the other: n sequential operations
            h = torch.tanh(x[t : t + 1] @ w_x + h @ w_h)

    conv = torch.nn.Conv1d(d, d, kernel_size=3, bias=False)

    def cnn():  # causal: pad k - 1 on the left, n outputs
        conv(torch.nn.functional.pad(x.T[None], (2, 0)))

    def attention():
        q, k, v = torch.randn(n, d), torch.randn(n, d), torch.randn(n, d)
        torch.softmax(q @ k.T, -1) @ v

    assert 2 * _row(rows, "RNN")["ops"] == _counted_flops(rnn)
    assert 2 * _row(rows, "CNN (k=3)")["ops"] == _counted_flops(cnn)
    assert 2 * _row(rows, "self-attention")["ops"] == _counted_flops(attention)


def _layers_until_connected(n: int, k: int, dilated: bool) -> int:
    """Breadth-first: stack causal conv layers until the last output depends on input 0."""
    reach = {n - 1}  # positions of the input that the last output depends on
    layers = 0
    while 0 not in reach:
        dilation = k**layers if dilated else 1
        reach = {p - j * dilation for p in reach for j in range(k) if p - j * dilation >= 0}
        layers += 1
    return layers


@pytest.mark.parametrize("n", [2, 3, 8, 9, 10, 27, 28, 100])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_cnn_path_length_matches_the_dependency_graph(n, k):
    rows = attnlab.fossil_table(n, 16, k=k)
    assert _row(rows, f"CNN (k={k})")["path"] == _layers_until_connected(n, k, dilated=False)
    assert _row(rows, f"CNN (k={k}, dilated)")["path"] == _layers_until_connected(
        n, k, dilated=True
    )


def test_rnn_and_attention_paths_and_sequential_steps():
    rows = attnlab.fossil_table(50, 16)
    assert (_row(rows, "RNN")["path"], _row(rows, "RNN")["sequential"]) == (49, 50)
    assert (_row(rows, "self-attention")["path"], _row(rows, "self-attention")["sequential"]) == (
        1,
        1,
    )


@pytest.mark.parametrize(
    "kwargs, word", [({"n": 1}, "n"), ({"n": 8, "k": 1}, "k"), ({"n": 8, "d": 0}, "d")]
)
def test_fossil_table_rejects_bad_sizes(kwargs, word):
    with pytest.raises(ValueError, match=word):
        attnlab.fossil_table(**kwargs)


@pytest.mark.parametrize("d_k, scaled", [(1, False), (16, False), (256, False), (256, True)])
def test_scaling_statistics_against_torch(d_k, scaled):
    stats = attnlab.scaling_statistics(d_k, scaled=scaled, n_queries=12, n_keys=7, seed=3)
    rng = np.random.default_rng(3)
    q = torch.tensor(rng.standard_normal((12, d_k)))
    k = torch.tensor(rng.standard_normal((7, d_k)))
    s = q @ k.T / (math.sqrt(d_k) if scaled else 1.0)
    a = torch.softmax(s, -1)
    entropy = torch.distributions.Categorical(probs=a).entropy()
    jac_norms = [
        torch.linalg.matrix_norm(
            torch.autograd.functional.jacobian(lambda r: torch.softmax(r, -1), row)
        )
        for row in s
    ]
    assert np.allclose(stats["scores"], s.numpy().ravel())
    assert stats["max_weight"] == pytest.approx(
        float(torch.quantile(a.max(-1).values, 0.5)), rel=1e-9
    )
    assert stats["entropy"] == pytest.approx(
        float(torch.quantile(entropy, 0.5)), rel=1e-9, abs=1e-12
    )
    assert stats["grad_norm"] == pytest.approx(
        float(torch.quantile(torch.stack(jac_norms), 0.5)), rel=1e-9
    )
    assert stats["max_entropy"] == pytest.approx(math.log(7))


def test_score_std_grows_like_sqrt_dk_unless_scaled():
    """Var(q . k) = d_k for unit-variance entries (Vaswani et al. 2017, footnote 4); a Monte Carlo
    estimate over 16k scores lands within 5%."""
    for d_k in (4, 64, 1024):
        raw = attnlab.scaling_statistics(d_k, scaled=False)["score_std"]
        scaled = attnlab.scaling_statistics(d_k, scaled=True)["score_std"]
        assert raw == pytest.approx(math.sqrt(d_k), rel=0.05)
        assert scaled == pytest.approx(1.0, rel=0.05)


def test_scaling_sweep_rows_equal_single_statistics():
    sweep = attnlab.scaling_sweep((2, 64), scaled=False, n_queries=16, n_keys=8)
    single = attnlab.scaling_statistics(64, scaled=False, n_queries=16, n_keys=8)
    assert list(sweep["d_k"]) == [2, 64]
    assert sweep["grad_norm"][1] == single["grad_norm"]
    assert sweep["max_weight"][1] == single["max_weight"]


def test_zone1_widgets_draw_statically(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("ATTNLAB_STATIC", "1")
    assert attnlab.fossil_explorer(n=64, d=512) is None
    assert "self-attention" in capsys.readouterr().out
    assert attnlab.scaling_explorer(d_k=16, scaled=True) is None
    assert "max attention weight" in capsys.readouterr().out
    x = np.random.default_rng(0).normal(size=(5, 8))
    _, w = attnlab.qkv_attention(x, np.eye(8)[:, :4], np.eye(8)[:, :4], np.eye(8))
    attnlab.plot_qkv(list("abcde"), x, x[:, :4], x[:, :4], x, w)
    plt.close("all")
