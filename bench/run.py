"""`make bench`: performance and quality of the book's code, as ratios measured in one run.

Every speed figure compares two things timed on the same machine in the same process, repeats
interleaved so that background noise hits both sides alike: our GPT against `transformers`'
GPT2LMHeadModel with the same configuration, weights and data; `train()` against a bare loop;
our attention against `torch.nn.MultiheadAttention`; generation with and without the KV cache.
Quality figures come from the chapters themselves, executed in the `cpu` profile, so the report
and the book quote the same runs.

    python -m bench.run            # full report: bench/report.md and bench/results.json
    python -m bench.run --quick    # tiny sizes, one repeat, no chapters (the test suite runs it)
    python -m bench.run --no-chapters --out /tmp/bench   # the speed measurements only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from llmbook_utils.attention import MultiHeadAttention
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.hf import gpt_to_hf
from llmbook_utils.train import TrainConfig, make_optimizer, train

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    """Median and spread (min, max) of repeated measurements, in seconds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        return cls(statistics.median(samples), min(samples), max(samples))


def describe_machine() -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, Timing]:
    """Run each function once to warm up, then ``repeats`` rounds in turn; each returns seconds."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(fn())
    return {name: Timing.of(s) for name, s in samples.items()}


def matmul_gflops(n: int, repeats: int) -> Timing:
    """The machine's own float32 matmul peak (GFLOP/s), the yardstick for MFU."""
    a, b = torch.randn(n, n), torch.randn(n, n)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        return (time.perf_counter() - start) / 5

    t = interleaved({"mm": run}, repeats)["mm"]
    flops = 2 * n**3 / 1e9
    return Timing(flops / t.median, flops / t.high, flops / t.low)


def gpt_training_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], steps: int):
    """A closure timing ``steps`` of forward + backward + AdamW on one batch, in seconds."""
    optimizer = make_optimizer(model, TrainConfig(lr=1e-4, weight_decay=0.1))
    x, y = batch

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            out = model(x, labels=y) if hasattr(model, "transformer") else model(x, y)
            loss = out.loss if hasattr(out, "loss") else out[1]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps

    return run


def gpt_vs_hf(cfg: GPTConfig, batch_size: int, steps: int, repeats: int, peak: float) -> dict:
    """Tokens/s of our GPT and of GPT2LMHeadModel with identical config, weights and data."""
    torch.manual_seed(0)
    ours = GPT(cfg)
    theirs = gpt_to_hf(ours)
    # transformers shifts labels inside the model; ours takes shifted targets: same loss.
    idx = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length + 1))
    t = interleaved(
        {
            "ours": gpt_training_step(ours, (idx[:, :-1], idx[:, 1:]), steps),
            "hf": gpt_training_step(theirs, (idx[:, :-1], idx[:, :-1]), steps),
        },
        repeats,
    )
    tokens = batch_size * cfg.context_length
    n_params = sum(p.numel() for p in ours.parameters())
    # 6N per token for the matmuls of forward + backward, plus attention's QK^T and AV.
    flops_per_token = 6 * n_params + 12 * cfg.n_layers * cfg.d_model * cfg.context_length
    ours_tps = tokens / t["ours"].median
    return {
        "params": n_params,
        "ours_tokens_per_s": ours_tps,
        "hf_tokens_per_s": tokens / t["hf"].median,
        "speedup": t["hf"].median / t["ours"].median,
        "spread_s": {k: [v.low, v.high] for k, v in t.items()},
        "mfu": ours_tps * flops_per_token / (peak * 1e9),
    }


def train_loop_vs_bare(cfg: GPTConfig, batch_size: int, steps: int, repeats: int) -> dict:
    """Tokens/s through `llmbook_utils.train.train` against a hand-written loop, same model."""
    torch.manual_seed(0)
    data = torch.randint(0, cfg.vocab_size, (batch_size * 64, cfg.context_length + 1))
    dataset = torch.utils.data.TensorDataset(data[:, :-1], data[:, 1:])
    tcfg = TrainConfig(
        max_steps=steps,
        batch_size=batch_size,
        lr=1e-3,
        warmup_steps=2,
        log_every=10**9,
        progress=False,
        seed=0,
    )

    def through_train() -> float:
        model = GPT(cfg)
        start = time.perf_counter()
        train(model, dataset, tcfg)
        return (time.perf_counter() - start) / steps

    def bare() -> float:
        model = GPT(cfg)
        start = time.perf_counter()
        optimizer = make_optimizer(model, tcfg)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
        done = 0
        while done < steps:
            for x, y in loader:
                _, loss = model(x, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                done += 1
                if done == steps:
                    break
        return (time.perf_counter() - start) / steps

    t = interleaved({"train": through_train, "bare": bare}, repeats)
    return {"ratio": t["bare"].median / t["train"].median, "spread_s": vars(t["train"])}


def mha_vs_torch(d_model: int, n_heads: int, batch: int, seq: int, repeats: int) -> dict:
    """Forward + backward of our MultiHeadAttention against nn.MultiheadAttention."""
    torch.manual_seed(0)
    ours = MultiHeadAttention(d_model, n_heads)
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
    x = torch.randn(batch, seq, d_model, requires_grad=True)

    def timed(fn: Callable[[], torch.Tensor]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for _ in range(10):
                fn().sum().backward()
            return (time.perf_counter() - start) / 10

        return run

    t = interleaved(
        {
            "ours": timed(lambda: ours(x)[0]),
            "torch": timed(lambda: theirs(x, x, x, need_weights=False)[0]),
        },
        repeats,
    )
    return {"ratio": t["torch"].median / t["ours"].median}


def kv_cache_speedup(cfg: GPTConfig, new_tokens: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 8))

    def gen(use_cache: bool) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            model.generate(prompt, new_tokens, temperature=0.0, use_cache=use_cache)
            return time.perf_counter() - start

        return run

    t = interleaved({"cache": gen(True), "no_cache": gen(False)}, repeats)
    return {
        "speedup": t["no_cache"].median / t["cache"].median,
        "cache_tokens_per_s": new_tokens / t["cache"].median,
        "no_cache_tokens_per_s": new_tokens / t["no_cache"].median,
    }


def run_chapters(profile: str) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """Execute every chapter in ``profile``; return times and the values each chapter glued."""
    import nbformat
    from nbclient import NotebookClient

    from llmbook_utils.notebook import read_glued

    out_dir = ROOT / "bench" / "_runs" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    env_before = dict(os.environ)
    os.environ.update(LLMBOOK_PROFILE=profile, LLMBOOK_STATIC="1", HF_HUB_OFFLINE="1")
    times, glued = {}, {}
    try:
        for path in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            NotebookClient(
                nb,
                timeout=1800,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
            times[path.stem] = time.perf_counter() - start
            nbformat.write(nb, out_dir / path.name)
            glued[path.stem] = read_glued(out_dir / path.name)
            print(f"  {profile:5s} {path.stem:28s} {times[path.stem]:7.1f} s", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return times, glued


def _float(glued: dict[str, dict[str, str]], chapter: str, name: str) -> float | None:
    text = glued.get(chapter, {}).get(name)
    return float(text.strip("'\"")) if text is not None else None


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def spread(low_high: list[float]) -> str:
    return f"{low_high[0]:.3f}-{low_high[1]:.3f}"


def write_report(results: dict, path: Path) -> None:
    m = results["machine"]
    r = results
    cs = r["chapter_seconds"]
    m1, m10 = r["gpt_1m"]["params"] / 1e6, r["gpt_10m"]["params"] / 1e6
    lines = [
        "# Benchmark report",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
        f"torch {m['torch']}, Python {m['python']}"
        + (f", GPU {m['cuda']}" if m["cuda"] else ", no GPU")
        + f". Measured float32 matmul peak: {r['matmul_gflops']:.0f} GFLOP/s. "
        f"Generated by `make bench` on {r['date']}"
        + (" (quick mode: tiny sizes, not meaningful)" if r["quick"] else "")
        + ".",
        "",
        "| measure | result | goal |",
        "|---|---|---|",
        f"| training tokens/s, our GPT vs GPT2LMHeadModel, {m1:.1f}M params"
        f" | {r['gpt_vs_hf_speedup_1m']:.2f}x | >= 1.2x |",
        f"| training tokens/s, our GPT vs GPT2LMHeadModel, {m10:.1f}M params"
        f" | {r['gpt_vs_hf_speedup_10m']:.2f}x | >= 1.2x |",
        f"| model FLOPs utilisation at {m10:.1f}M params (of measured peak)"
        f" | {100 * r['mfu_10m']:.0f}% | >= 50% |",
        f"| `train()` vs a bare loop (tokens/s) | {r['train_loop_vs_bare']:.3f}x | >= 0.95x |",
        f"| MultiHeadAttention vs nn.MultiheadAttention (forward + backward) "
        f"| {r['mha_vs_torch']:.2f}x | >= 1.0x |",
        f"| KV-cache generation speed-up, 200 new tokens | {r['kv_cache_speedup']:.1f}x | > 1x |",
        f"| char-level Shakespeare validation loss, chapter 7 (`cpu` profile) "
        f"| {fmt(r['shakespeare_val_loss_cpu'], '.3f')} nats/char | <= 1.70 |",
        f"| tweet sentiment macro-F1: fine-tuned MiniLM vs TF-IDF + logistic regression "
        f"| {fmt(r['finetune_macro_f1'], '.3f')} vs {fmt(r['tfidf_macro_f1'], '.3f')} | >= +0.03 |",
        "",
        "## Chapter execution times",
        "",
        "| chapter | smoke (s) | cpu (s) |",
        "|---|---|---|",
    ]
    for chapter, t in sorted(cs.items()):
        lines.append(f"| {chapter} | {fmt(t.get('smoke'), '.0f')} | {fmt(t.get('cpu'), '.0f')} |")
    lines += [
        "",
        "## Details",
        "",
        *(
            f"- GPT {g['params']:,} params: ours {g['ours_tokens_per_s']:.0f} tok/s, "
            f"transformers {g['hf_tokens_per_s']:.0f} tok/s; fastest to slowest repeat "
            f"(s per timed run): ours {spread(g['spread_s']['ours'])}, "
            f"transformers {spread(g['spread_s']['hf'])}"
            for g in (r["gpt_1m"], r["gpt_10m"])
        ),
        f"- KV cache: {r['kv']['cache_tokens_per_s']:.0f} tok/s with, "
        f"{r['kv']['no_cache_tokens_per_s']:.0f} tok/s without",
        "- Speed ratios are medians of interleaved repeats after a warm-up; the spread is the "
        "fastest and slowest repeat.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, no chapters")
    parser.add_argument(
        "--no-chapters", action="store_true", help="only the speed measurements, no chapters"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where to write")
    args = parser.parse_args(argv)
    q = args.quick
    repeats = 1 if q else 5

    def gpt_cfg(ctx: int, d: int, layers: int, heads: int) -> GPTConfig:
        if q:
            return GPTConfig(vocab_size=96, context_length=16, d_model=32, n_layers=1, n_heads=2)
        return GPTConfig(
            vocab_size=96, context_length=ctx, d_model=d, n_layers=layers, n_heads=heads
        )

    print("machine and matmul peak", flush=True)
    peak = matmul_gflops(256 if q else 2048, repeats).median
    print("GPT vs transformers", flush=True)
    gpt_1m = gpt_vs_hf(gpt_cfg(128, 128, 5, 4), 4 if q else 32, 1 if q else 3, repeats, peak)
    gpt_10m = gpt_vs_hf(gpt_cfg(256, 384, 6, 6), 4 if q else 16, 1 if q else 3, repeats, peak)
    print("train() vs bare loop", flush=True)
    loop = train_loop_vs_bare(gpt_cfg(128, 128, 5, 4), 4 if q else 32, 3 if q else 40, repeats)
    print("attention", flush=True)
    mha = mha_vs_torch(32 if q else 256, 2 if q else 8, 2 if q else 16, 8 if q else 128, repeats)
    print("KV cache", flush=True)
    kv = kv_cache_speedup(gpt_cfg(256, 128, 4, 4), 8 if q else 200, repeats)

    chapter_seconds: dict[str, dict[str, float]] = {}
    glued: dict[str, dict[str, str]] = {}
    if not (q or args.no_chapters):
        for profile in ("smoke", "cpu"):
            print(f"chapters, {profile} profile", flush=True)
            times, values = run_chapters(profile)
            for chapter, seconds in times.items():
                chapter_seconds.setdefault(chapter, {})[profile] = seconds
            if profile == "cpu":
                glued = values

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": q,
        "machine": describe_machine(),
        "matmul_gflops": peak,
        "gpt_vs_hf_speedup_1m": gpt_1m["speedup"],
        "gpt_vs_hf_speedup_10m": gpt_10m["speedup"],
        "mfu_10m": gpt_10m["mfu"],
        "train_loop_vs_bare": loop["ratio"],
        "mha_vs_torch": mha["ratio"],
        "kv_cache_speedup": kv["speedup"],
        "shakespeare_val_loss_cpu": _float(glued, "07_gpt_pretraining", "ch7_val_loss"),
        "finetune_macro_f1": _float(glued, "09_finetuning", "ch9_finetune_macro_f1"),
        "tfidf_macro_f1": _float(glued, "09_finetuning", "ch9_tfidf_macro_f1"),
        "chapter_seconds": chapter_seconds,
        "gpt_1m": gpt_1m,
        "gpt_10m": gpt_10m,
        "kv": kv,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.out / "report.md")
    print((args.out / "report.md").read_text())
    return results


if __name__ == "__main__":
    main()
