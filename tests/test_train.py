"""The training loop: schedule, optimiser groups, precision, exact resume, checkpoints, bad input.

References: the formulas of the schedules and torch's CosineAnnealingLR; PyTorch's documented
mixed-precision recipe (autocast + GradScaler, unscale before clipping) written out by hand; an
uninterrupted run for every resumed one (bit for bit).
"""

from __future__ import annotations

import logging
import math
import os
import stat
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmbook_utils import checkpoint as checkpoint_module
from llmbook_utils.batching import LengthBucketSampler
from llmbook_utils.data import LMBlockDataset, PaddingCollator
from llmbook_utils.device import set_seed
from llmbook_utils.precision import autocast_dtype, make_grad_scaler
from llmbook_utils.train import (
    Callback,
    EpochSampler,
    TrainConfig,
    get_lr,
    load_checkpoint,
    make_optimizer,
    save_checkpoint,
    train,
)

VOCAB = 16


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class TinyConfig:
    vocab_size: int = VOCAB
    d_model: int = 32
    dropout: float = 0.3


class TinyLM(nn.Module):
    """A bigram-ish character LM with dropout and tied embeddings: enough to test the loop."""

    def __init__(self, config: TinyConfig | None = None) -> None:
        super().__init__()
        self.config = config or TinyConfig()
        c = self.config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.mix = nn.Linear(c.d_model, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size)
        self.lm_head.weight = self.tok_emb.weight  # tied, as in GPT-2

    def forward(self, idx, targets=None):
        h = self.norm(self.drop(torch.tanh(self.mix(self.tok_emb(idx)))))
        logits = self.lm_head(h)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def lm_data(n_tokens: int = 200, seed: int = 0) -> LMBlockDataset:
    gen = torch.Generator().manual_seed(seed)
    tokens = (torch.arange(n_tokens) * 5 + torch.randint(0, 3, (n_tokens,), generator=gen)) % VOCAB
    return LMBlockDataset(tokens, block_size=8)


def make_model(seed: int = 123) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM()


def base_config(**changes) -> TrainConfig:
    settings = dict(
        max_steps=24, batch_size=16, lr=1e-2, min_lr=1e-3, warmup_steps=4, grad_accum_steps=2,
        log_every=1, eval_every=6, eval_batches=2, device="cpu", seed=7,
    )  # fmt: skip
    settings.update(changes)
    return TrainConfig(**settings)


def losses(history) -> list[tuple]:
    """The deterministic part of the records (no timings)."""
    return [
        (r["step"], r.get("train_loss"), r.get("lr"), r.get("val_loss")) for r in history.records
    ]


# --- schedule and optimiser -------------------------------------------------------------------


def test_get_lr_matches_formula():
    cfg = TrainConfig(max_steps=110, lr=1e-3, min_lr=1e-4, warmup_steps=10, decay="cosine")
    # Warmup: linear from lr/10 at step 0 to lr at step 9 (hand-computed values).
    assert get_lr(0, cfg) == pytest.approx(1e-4)
    assert get_lr(4, cfg) == pytest.approx(5e-4)
    assert get_lr(9, cfg) == pytest.approx(1e-3)
    # Decay over the remaining 100 steps; progress p = (step - 10) / 100.
    assert get_lr(10, cfg) == pytest.approx(1e-3)
    assert get_lr(60, cfg) == pytest.approx(5.5e-4)  # p = 1/2: halfway between lr and min_lr
    p = 0.25
    assert get_lr(35, cfg) == pytest.approx(1e-4 + 9e-4 * (1 + math.cos(math.pi * p)) / 2)
    assert get_lr(110, cfg) == pytest.approx(1e-4) and get_lr(500, cfg) == pytest.approx(1e-4)
    linear = TrainConfig(max_steps=110, lr=1e-3, min_lr=1e-4, warmup_steps=10, decay="linear")
    assert get_lr(35, linear) == pytest.approx(1e-3 - 9e-4 * 0.25)
    assert get_lr(110, linear) == pytest.approx(1e-4)
    constant = TrainConfig(max_steps=110, lr=1e-3, warmup_steps=10, decay="constant")
    assert get_lr(4, constant) == pytest.approx(5e-4) and get_lr(100, constant) == 1e-3


def test_cosine_decay_matches_torch_scheduler():
    cfg = TrainConfig(max_steps=50, lr=0.1, min_lr=0.01, warmup_steps=0)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=0.01)
    for step in range(51):
        assert get_lr(step, cfg) == pytest.approx(sched.get_last_lr()[0], rel=1e-9)
        opt.step()
        sched.step()


def test_weight_decay_only_on_matrices():
    model = make_model()
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and len(decay["params"]) == 2
    assert all(p.dim() == 1 for p in no_decay["params"]) and len(no_decay["params"]) == 4
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_config_validation_names_values():
    with pytest.raises(ValueError, match="max_steps=0"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="min_lr=0.1.*lr=0.01"):
        TrainConfig(lr=0.01, min_lr=0.1)
    with pytest.raises(ValueError, match="decay='step'"):
        TrainConfig(decay="step")
    with pytest.raises(ValueError, match="precision='fp8'"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="warmup_steps=20 > max_steps=10"):
        TrainConfig(max_steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="grad_clip=0"):
        TrainConfig(grad_clip=0)


def test_epoch_sampler_order_is_seeded_and_resumable():
    a = list(EpochSampler(50, seed=1, epoch=0))
    assert sorted(a) == list(range(50)) and a == list(EpochSampler(50, seed=1, epoch=0))
    assert a != list(EpochSampler(50, seed=1, epoch=1)) and a != list(EpochSampler(50, 2, 0))
    assert list(EpochSampler(50, seed=1, epoch=0, start=20)) == a[20:]


# --- the loop ------------------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, cfg):
        self.events.append(("begin", cfg.max_steps))

    def on_log(self, record):
        self.events.append(("log", record["step"]))

    def on_eval(self, record):
        self.events.append(("eval", record["step"]))

    def on_train_end(self, history):
        self.events.append(("end", len(history.records)))


def test_train_learns_and_records():
    data, val = lm_data(seed=0), lm_data(seed=1)
    recorder = Recorder()
    cfg = base_config(max_steps=40, log_every=10, eval_every=20, lr=3e-2)
    history = train(make_model(), data, cfg, eval_data=val, callbacks=[recorder])
    assert [r["step"] for r in history.records if "train_loss" in r] == [10, 20, 30, 40]
    assert history.val_loss[-1] < history.val_loss[0] < math.log(VOCAB) + 0.5
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]
    first = history.records[0]
    assert set(first) == {"step", "train_loss", "lr", "elapsed_s", "tokens_per_s"}
    assert first["lr"] == pytest.approx(get_lr(9, cfg))
    assert recorder.events[0] == ("begin", 40) and recorder.events[-1] == ("end", 6)
    assert recorder.events[1:-1] == [("log", 10), ("log", 20), ("eval", 20), ("log", 30),
                                     ("log", 40), ("eval", 40)]  # fmt: skip
    frame = history.to_frame()
    assert list(frame.index) == [10, 20, 30, 40] and frame.loc[20, "val_loss"] > 0


def test_resume_reproduces_uninterrupted_run_bitwise(tmp_path):
    data, val = lm_data(seed=0), lm_data(seed=1)  # 192 windows: 12 batches an epoch
    reference_model = make_model()
    reference = train(reference_model, data, base_config(), eval_data=val)

    class Crash(Exception):
        pass

    class CrashAt(Callback):
        def on_log(self, record):
            if record["step"] == 13:
                raise Crash

    ckpt = tmp_path / "ckpt"
    cfg = base_config(checkpoint_dir=str(ckpt), checkpoint_every=5)
    with pytest.raises(Crash):
        train(make_model(), data, cfg, eval_data=val, callbacks=[CrashAt()])
    state = load_checkpoint(ckpt)
    assert state["step"] == 10 and state["extra"]["epoch"] == 1  # mid-run, mid-epoch
    assert state["model_config"] == {"vocab_size": VOCAB, "d_model": 32, "dropout": 0.3}

    resumed_model = make_model(seed=999)  # different initial weights: all come from the file
    resumed = train(resumed_model, data, cfg, eval_data=val, resume_from=True)
    assert losses(resumed) == losses(reference)  # exact float equality, dropout included
    assert len(reference.val_loss) == 4 and len(reference.train_loss) == 24
    for p, q in zip(resumed_model.parameters(), reference_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_checkpoint_is_atomic(tmp_path, monkeypatch):
    model = make_model()
    cfg = base_config()
    opt = make_optimizer(model, cfg)
    x, y = lm_data()[0]
    model(x[None], y[None])[1].backward()
    opt.step()
    path = tmp_path / "ckpt"
    save_checkpoint(path, model, opt, step=1, train_config=cfg)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    assert sorted(os.listdir(path)) == ["model.safetensors", "optimizer.pt", "state.json"]
    torch.load(path / "optimizer.pt", weights_only=True)  # safe to load

    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)  # dies after the weights
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, step=2, train_config=cfg)
    assert os.listdir(tmp_path) == ["ckpt"]  # no partial directory left behind
    fresh = make_model(seed=5)
    state = load_checkpoint(path, fresh, make_optimizer(fresh, cfg))
    assert state["step"] == 1 and state["train_config"]["lr"] == cfg.lr
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, saved[name])
    monkeypatch.undo()

    # A crash between moving the old checkpoint aside and moving the new one in.
    real_replace, calls = os.replace, []

    def replace_then_crash(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace_then_crash)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(path, model, opt, step=3, train_config=cfg)
    monkeypatch.undo()
    assert load_checkpoint(path, make_model())["step"] == 1  # the old one is still found
    save_checkpoint(path, model, opt, step=4, train_config=cfg)
    assert os.listdir(tmp_path) == ["ckpt"] and load_checkpoint(path)["step"] == 4  # cleaned up
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_early_stopping_and_dict_batches():
    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 8)
            self.head = nn.Linear(8, 2)

        def forward(self, input_ids, attention_mask, labels=None):
            mask = attention_mask.unsqueeze(-1).float()  # (B, T) -> (B, T, 1)
            pooled = (self.emb(input_ids) * mask).sum(1) / mask.sum(1)  # mean over real tokens
            logits = self.head(pooled)
            return SimpleNamespace(logits=logits, loss=F.cross_entropy(logits, labels))

    gen = torch.Generator().manual_seed(0)
    examples = [
        {"input_ids": torch.randint(0, VOCAB, (int(n),), generator=gen).tolist(), "label": i % 2}
        for i, n in enumerate(torch.randint(2, 9, (64,), generator=gen))
    ]
    # lr = 0: the validation loss never improves, so training stops after `patience` evals.
    cfg = TrainConfig(max_steps=100, batch_size=8, lr=0.0, eval_every=5, log_every=5,
                      early_stopping_patience=2, device="cpu")  # fmt: skip
    history = train(Classifier(), examples, cfg, eval_data=examples, collate_fn=PaddingCollator())
    assert history.stopped_early and history.records[-1]["step"] == 15
    assert len(set(history.val_loss)) == 1


def test_bad_inputs_raise_value_error():
    cfg = base_config(max_steps=2, warmup_steps=0)
    with pytest.raises(ValueError, match="train_data is empty"):
        train(make_model(), [], cfg)
    with pytest.raises(ValueError, match="10 examples, fewer than batch_size=16"):
        train(make_model(), [(torch.zeros(8, dtype=torch.long),) * 2] * 10, cfg)
    with pytest.raises(ValueError, match="map-style Dataset"):
        train(make_model(), torch.utils.data.DataLoader(lm_data()), cfg)
    with pytest.raises(ValueError, match="no loss"):
        train(make_model(), [(torch.zeros(8, dtype=torch.long),)] * 16, cfg)
    with pytest.raises(ValueError, match=r"stop_at=30 must be in \[1, max_steps=2\]"):
        train(make_model(), lm_data(), cfg, stop_at=30)
    with pytest.raises(ValueError, match="needs cfg.checkpoint_dir"):
        train(make_model(), lm_data(), cfg, resume_from=True)
    with pytest.raises(ValueError, match="early_stopping_patience=3 needs eval_data"):
        train(make_model(), lm_data(), base_config(early_stopping_patience=3))


# --- mixed precision -------------------------------------------------------------------------


def test_auto_precision_follows_the_gpu_generation(monkeypatch, caplog):
    """bf16 from compute capability 8.0 (Ampere) on; fp16 + scaler below (a T4 is 7.5)."""
    cuda = torch.device("cuda")
    # torch reports bf16 "supported" on a T4 through emulation: the rule must not rely on it.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert autocast_dtype("auto", cuda) is torch.float16
    with caplog.at_level(logging.WARNING, logger="llmbook_utils.precision"):
        assert autocast_dtype("bf16", cuda) is torch.float16  # falls back, and says so
    assert "compute capability 7.5" in caplog.text and "fp16" in caplog.text
    assert autocast_dtype("fp32", cuda) is None and autocast_dtype("fp16", cuda) is torch.float16

    caplog.clear()
    for capability in [(8, 0), (8, 9), (9, 0)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        assert autocast_dtype("auto", cuda) is torch.bfloat16
        assert autocast_dtype("bf16", cuda) is torch.bfloat16
    assert caplog.text == ""

    for device in (torch.device("cpu"), torch.device("mps")):
        assert autocast_dtype("auto", device) is None  # fp32 by default off CUDA
    cpu = torch.device("cpu")
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", cpu) is torch.float16
    assert make_grad_scaler(torch.float16, cpu).is_enabled()
    assert not make_grad_scaler(torch.bfloat16, cpu).is_enabled()
    assert not make_grad_scaler(None, cpu).is_enabled()
    with pytest.raises(ValueError, match="precision='fp8'"):
        autocast_dtype("fp8", cpu)


def test_fp16_training_follows_the_autocast_and_grad_scaler_recipe():
    """train(precision="fp16") on the CPU equals PyTorch's AMP recipe written out by hand."""
    cfg = base_config(max_steps=6, grad_accum_steps=1, warmup_steps=0, decay="constant",
                      eval_every=0, precision="fp16")  # fmt: skip
    data = lm_data()
    model = make_model()
    history = train(model, data, cfg)
    assert history.precision == "fp16"

    reference = make_model()
    optimizer = make_optimizer(reference, cfg)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    set_seed(cfg.seed)  # train seeds dropout the same way
    loader = torch.utils.data.DataLoader(
        data, batch_size=cfg.batch_size, sampler=EpochSampler(len(data), cfg.seed, 0),
        drop_last=True, generator=torch.Generator(),  # its own generator: dropout's RNG untouched
    )  # fmt: skip
    for (x, y), _ in zip(loader, range(cfg.max_steps), strict=False):
        with torch.autocast("cpu", dtype=torch.float16):
            _, loss = reference(x, y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(reference.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)

    fp32 = make_model()
    assert train(fp32, data, base_config(**{**cfg.__dict__, "precision": "fp32"})).precision == (
        "fp32"
    )
    assert not torch.equal(fp32.mix.weight, model.mix.weight)  # autocast really was on


# --- stop and resume ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_stop_at_then_resume_gives_bitwise_the_uninterrupted_weights(tmp_path, precision):
    """N steps straight == N/2 steps + checkpoint + load + N/2 steps, to the last bit.

    log_every does not divide the stopping step, so the half-accumulated training loss must
    travel through the checkpoint too; with fp16 so must the grad scaler's state.
    """
    data, val = lm_data(seed=0), lm_data(seed=1)
    cfg = base_config(max_steps=24, log_every=5, eval_every=8, precision=precision)
    straight_model = make_model()
    straight = train(straight_model, data, cfg, eval_data=val)

    ckpt_cfg = base_config(**{**cfg.__dict__, "checkpoint_dir": str(tmp_path / "ckpt")})
    first = train(make_model(), data, ckpt_cfg, eval_data=val, stop_at=12)
    assert first.records[-1]["step"] == 10 and load_checkpoint(tmp_path / "ckpt")["step"] == 12
    resumed_model = make_model(seed=999)  # every weight must come from the checkpoint
    resumed = train(resumed_model, data, ckpt_cfg, eval_data=val, resume_from=True)

    assert losses(resumed) == losses(straight)
    for p, q in zip(resumed_model.parameters(), straight_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_batch_sampler_gives_the_batches_and_resumes_exactly(tmp_path):
    """With ``batch_sampler``, the loop reads exactly the sampler's batches of epoch 0, 1, ...
    in order, and a run stopped mid-epoch resumes at the same batch, bit for bit."""
    data, val = lm_data(seed=0), lm_data(seed=1)  # 192 windows
    lengths = [(i * 7) % 13 for i in range(len(data))]

    class Logged(torch.utils.data.Dataset):
        def __init__(self, inner):
            self.inner, self.seen = inner, []

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            self.seen.append(i)
            return self.inner[i]

    def sampler() -> LengthBucketSampler:
        return LengthBucketSampler(lengths, batch_size=16, chunk=4, seed=3)  # 12 batches

    cfg = base_config(max_steps=24)  # 2 micro-batches a step: 48 batches, 4 epochs
    logged, straight_model = Logged(data), make_model()
    straight = train(straight_model, logged, cfg, eval_data=val, batch_sampler=sampler())
    expected, reference = [], sampler()
    for epoch in range(4):
        reference.set_epoch(epoch)
        expected += [i for batch in reference for i in batch]
    assert logged.seen == expected

    ckpt_cfg = base_config(max_steps=24, checkpoint_dir=str(tmp_path / "ckpt"))
    train(make_model(), data, ckpt_cfg, eval_data=val, stop_at=7, batch_sampler=sampler())
    assert load_checkpoint(tmp_path / "ckpt")["extra"]["batches_done"] == 2  # epoch 1, batch 2
    resumed_model = make_model(seed=999)
    resumed = train(resumed_model, data, ckpt_cfg, eval_data=val, resume_from=True,
                    batch_sampler=sampler())  # fmt: skip
    assert losses(resumed) == losses(straight)
    for p, q in zip(resumed_model.parameters(), straight_model.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="batch_sampler=list needs a set_epoch"):
        train(make_model(), data, cfg, batch_sampler=[[0, 1]])


def test_checkpoint_files_are_world_readable(tmp_path):
    old = os.umask(0o077)  # even with a strict umask, like the cache's files
    try:
        model = make_model()
        path = save_checkpoint(tmp_path / "ckpt", model, make_optimizer(model, base_config()))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in path.iterdir()}
    assert modes == {"model.safetensors": 0o644, "optimizer.pt": 0o644, "state.json": 0o644}
