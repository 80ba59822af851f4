"""GPT training speed for `make bench`: our GPT against GPT2LMHeadModel and a minimal GPT.

Every model runs the same loop (forward, backward, fused AdamW with decay on matrices, zero the
gradients) on the same batch, repeats interleaved after a warm-up (``bench.timing.interleaved``),
so that background load hits all of them alike. Pairs with identical configuration, weights
(``gpt_to_hf``) and data:

- ``gpt2``: GPT-2's configuration, GELU's tanh form: ours ``activation="gelu_tanh"`` against
  transformers' ``"gelu_new"``, GPT2LMHeadModel as GPT-2 is released;
- ``exact``: exact GELU in both (ours ``"gelu"``, the default; transformers' ``"gelu"``);

and ours (exact GELU) against ``MinimalGPT`` (``bench/minimal_gpt.py``), the same arithmetic
written as nanoGPT writes it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
import torch.nn as nn

from bench.minimal_gpt import MinimalGPT, configure_optimizer
from bench.timing import interleaved
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.hf import gpt_to_hf


def gpt_training_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], steps: int):
    """A closure timing ``steps`` of forward + backward + AdamW on one batch, in seconds.

    The same loop and the same optimiser (fused AdamW, decay on matrices) for every model.
    """
    optimizer = configure_optimizer(model, lr=1e-4, weight_decay=0.1)
    model.train()
    x, y = batch
    is_hf = hasattr(model, "transformer")
    # transformers shifts the labels inside the model: labels = inputs gives the same targets.
    call = (lambda: model(input_ids=x, labels=x).loss) if is_hf else (lambda: model(x, y)[1])

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            loss = call()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps

    return run


def gpt_speed(
    cfg: GPTConfig,
    batch_size: int,
    steps: int,
    repeats: int,
    peak: float,
) -> dict:
    """Training tokens/s of our GPT against GPT2LMHeadModel and a minimal GPT.

    Pairs with identical configuration, weights (``gpt_to_hf``) and data:
    - ``gpt2``: GPT-2's configuration, GELU's tanh form (ours ``"gelu_tanh"``, transformers'
      ``"gelu_new"``): GPT2LMHeadModel as GPT-2 is released;
    - ``exact``: exact GELU in both (ours ``"gelu"``, the default; transformers' ``"gelu"``);
    and ours (exact GELU) against ``MinimalGPT``, the same arithmetic in nanoGPT's style.
    """
    torch.manual_seed(0)
    ours_tanh = GPT(replace(cfg, activation="gelu_tanh"))
    ours = GPT(replace(cfg, activation="gelu"))
    models = {
        "ours_gelu_tanh": ours_tanh,
        "hf_gelu_new": gpt_to_hf(ours_tanh),
        "ours_gelu": ours,
        "hf_gelu": gpt_to_hf(ours),
        "minimal": MinimalGPT(replace(cfg, activation="gelu")),
    }
    idx = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length + 1))
    batch = (idx[:, :-1], idx[:, 1:])
    t = interleaved({k: gpt_training_step(m, batch, steps) for k, m in models.items()}, repeats)
    tokens = batch_size * cfg.context_length
    n_params = ours.num_parameters()
    # 6N per token for the matmuls of forward + backward, plus attention's QK^T and AV.
    flops_per_token = 6 * n_params + 12 * cfg.n_layers * cfg.d_model * cfg.context_length
    ours_tps = tokens / t["ours_gelu"].median
    return {
        "params": n_params,
        "tokens_per_s": {k: tokens / v.median for k, v in t.items()},
        "speedup_gpt2": t["hf_gelu_new"].median / t["ours_gelu_tanh"].median,
        "speedup_exact": t["hf_gelu"].median / t["ours_gelu"].median,
        "speedup_default_vs_gpt2": t["hf_gelu_new"].median / t["ours_gelu"].median,
        "vs_minimal": t["minimal"].median / t["ours_gelu"].median,
        "spread_s": {k: [v.low, v.high] for k, v in t.items()},
        "mfu": ours_tps * flops_per_token / (peak * 1e9),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _spread(low_high: list[float]) -> str:
    return f"{low_high[0]:.3f}-{low_high[1]:.3f}"


def ratio(value: float | None) -> str:
    return _fmt(value, ".2f") + ("x" if value is not None else "")


def gpt_rows(r: dict) -> list[str]:
    """The GPT training-speed rows of the report's table."""
    rows = []
    for g in (r.get("gpt_1m"), r.get("gpt_10m")):
        if g is None:
            continue
        size = f"{g['params'] / 1e6:.1f}M params"
        rows += [
            f"| training tokens/s, our GPT vs GPT2LMHeadModel, identical GPT-2 configuration "
            f"(GELU tanh form), {size} | {ratio(g['speedup_gpt2'])} | >= 1.3x |",
            f"| training tokens/s, our GPT vs GPT2LMHeadModel, identical configuration with "
            f"exact GELU (our default), {size} | {ratio(g['speedup_exact'])} | (reported) |",
            f"| training tokens/s, our default GPT (exact GELU) vs GPT2LMHeadModel as GPT-2 "
            f"(`gelu_new`: not the same function), {size} "
            f"| {ratio(g['speedup_default_vs_gpt2'])} | (reported) |",
            f"| training tokens/s, our GPT vs a minimal nanoGPT-style GPT, {size} "
            f"| {ratio(g['vs_minimal'])} | >= 1.0x |",
        ]
    ch7 = r.get("gpt_ch7")
    if ch7 is not None:
        rows += [
            f"| training tokens/s at chapter 7's `cpu` configuration "
            f"({ch7['params'] / 1e3:.0f}k params): our GPT vs the minimal GPT "
            f"| {ratio(ch7['vs_minimal'])} | >= 1.0x |",
            f"| the same, our GPT vs GPT2LMHeadModel (GPT-2 configuration / exact GELU) "
            f"| {ratio(ch7['speedup_gpt2'])} / {ratio(ch7['speedup_exact'])} | (reported) |",
        ]
    return rows


def gpt_details(r: dict) -> list[str]:
    """One line per size with every model's tokens/s and the spread of the repeats."""
    lines = []
    for name in ("gpt_ch7", "gpt_1m", "gpt_10m"):
        g = r.get(name)
        if g is None:
            continue
        speeds = ", ".join(f"{k} {v:,.0f}" for k, v in g["tokens_per_s"].items())
        spreads = ", ".join(f"{k} {_spread(v)}" for k, v in g["spread_s"].items())
        lines.append(
            f"- GPT {g['params']:,} params, training tokens/s: {speeds}; fastest to slowest "
            f"repeat (s per training step): {spreads}"
        )
    return lines
