"""attnlab.train: schedule, clipping, progress bar, exact resume, and a model that really learns."""

import itertools
import math

import pytest
import torch
from attnlab import GPT, GPTConfig
from attnlab.data import CopyTask, LinearRegressionTask, stdlib_corpus, unigram_entropy
from attnlab.train import TrainConfig, Trainer, lr_at_step, masked_accuracy, train_model


def test_warmup_then_cosine_schedule():
    cfg = TrainConfig(steps=110, lr=1.0, min_lr=0.1, warmup_steps=10)
    lrs = [lr_at_step(s, cfg) for s in range(110)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear warmup to the peak
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    mid = 10 + 99 / 2  # halfway through the decay: halfway between lr and min_lr
    assert lr_at_step(int(mid), cfg) == pytest.approx(
        0.1 + 0.45 * (1 + math.cos(math.pi * (int(mid) - 10) / 99))
    )
    decay = lrs[10:]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert lr_at_step(0, TrainConfig(steps=5, lr=2.0, warmup_steps=0)) == pytest.approx(2.0)
    assert TrainConfig(steps=5, lr=2.0, warmup_steps=0).min_lr is None  # defaults to lr / 10
    assert lr_at_step(4, TrainConfig(steps=5, lr=2.0, warmup_steps=0)) == pytest.approx(0.2)


def tiny_copy_setup(seed=0, dropout=0.0):
    task = CopyTask(length=6, n_symbols=8)
    torch.manual_seed(seed)
    cfg = GPTConfig(
        vocab_size=task.vocab_size,
        context_length=task.seq_len,
        d_model=32,
        n_layers=2,
        n_heads=4,
        dropout=dropout,
    )
    return task, GPT(cfg)


def test_gradients_are_clipped_to_the_global_norm():
    task, model = tiny_copy_setup()
    trainer = Trainer(
        model, lambda g: task.batch(8, g), TrainConfig(steps=3, grad_clip=1e-3, progress=False)
    )
    trainer.train_step()
    total = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert trainer.history["grad_norm"][0] > 1e-3  # the recorded norm is the one before clipping
    assert float(total) == pytest.approx(1e-3, rel=1e-4)


def test_resume_from_checkpoint_is_bit_exact(tmp_path):
    """2k steps in one go == k steps, save, load into a fresh trainer, k more steps."""
    k = 15
    cfg = TrainConfig(
        steps=2 * k, lr=3e-3, warmup_steps=5, eval_every=10, eval_batches=2, progress=False
    )

    def make(seed):
        task, model = tiny_copy_setup(seed=seed, dropout=0.1)  # dropout uses the global RNG
        return Trainer(
            model, lambda g: task.batch(8, g), cfg, eval_batch=lambda g: task.batch(8, g)
        )

    straight = make(seed=0)
    straight.fit()

    first = make(seed=0)
    first.fit(k)
    first.save(tmp_path / "ckpt.pt")
    torch.manual_seed(999)  # disturb the global RNG: the checkpoint must restore it
    resumed = make(seed=1)  # different initial weights, overwritten by load
    resumed.load(tmp_path / "ckpt.pt")
    resumed.fit()

    assert resumed.step == straight.step == 2 * k
    for (name, a), (_, b) in zip(
        straight.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    assert resumed.history == straight.history
    assert straight.history["eval_step"] == [10, 20, 30]


def test_progress_bar_shows_the_loss(capsys):
    task, model = tiny_copy_setup()
    train_model(model, lambda g: task.batch(4, g), TrainConfig(steps=10, progress=True))
    assert "loss=" in capsys.readouterr().err


def test_loss_falls_well_below_the_unigram_baseline():
    """A tiny GPT on the stdlib corpus beats the best context-free predictor by a wide margin."""
    corpus = stdlib_corpus(200_000)
    baseline = unigram_entropy(corpus.train_data, corpus.vocab_size)
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=corpus.vocab_size, context_length=64, d_model=64, n_layers=2, n_heads=4
        )
    )
    cfg = TrainConfig(steps=300, lr=3e-3, warmup_steps=30, eval_every=150, progress=False)
    history = train_model(
        model,
        lambda g: corpus.batch(16, 64, g),
        cfg,
        eval_batch=lambda g: corpus.batch(16, 64, g, split="val"),
    )
    assert len(history["loss"]) == 300 and history["eval_step"] == [150, 300]
    assert history["loss"][0] > 0.9 * math.log(corpus.vocab_size)  # starts near uniform guessing
    assert history["eval_loss"][-1] < 0.75 * baseline, (history["eval_loss"], baseline)


def test_tiny_model_learns_to_copy():
    task, model = tiny_copy_setup()
    train_model(
        model,
        lambda g: task.batch(32, g),
        TrainConfig(steps=250, lr=1e-2, warmup_steps=20, progress=False),
    )
    x, y = task.batch(256, torch.Generator().manual_seed(123))
    model.eval()
    with torch.no_grad():
        assert masked_accuracy(model(x), y) > 0.9


def test_custom_loss_fn_for_continuous_tokens():
    """The loop trains any model: here a linear read-out of in-context regression tokens."""
    task = LinearRegressionTask(d=2, n_points=4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5 * 3, 1))

    def mse(m, batch):
        tokens, target = batch
        return ((m(tokens)[:, 0] - target) ** 2).mean()

    history = train_model(
        model,
        lambda g: task.batch(64, g),
        TrainConfig(steps=60, lr=1e-2, warmup_steps=0, progress=False),
        loss_fn=mse,
    )
    assert sum(history["loss"][-10:]) < sum(history["loss"][:10])


def test_train_config_errors():
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="grad_clip must be positive"):
        TrainConfig(grad_clip=-1)
    task, model = tiny_copy_setup()
    with pytest.raises(ValueError, match="needs an eval_batch"):
        Trainer(model, lambda g: task.batch(2, g)).evaluate()
