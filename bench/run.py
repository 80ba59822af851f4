"""`make bench`: performance and quality of the book's code, as ratios measured in one run.

Every speed figure compares two things timed on the same machine in the same process, repeats
interleaved so that background noise hits both sides alike: our GPT against `transformers`'
GPT2LMHeadModel with the same configuration, weights and data (in GPT-2's configuration, GELU's
tanh form, and with exact GELU in both), and against a careful minimal GPT
(`bench/minimal_gpt.py`, nanoGPT-style); `train()` against a bare loop; our attention against
`torch.nn.MultiheadAttention`; generation with and without the KV cache.
Quality figures come from the chapters themselves, executed in the `cpu` profile, so the report
and the book quote the same runs.

    python -m bench.run            # full report: bench/report.md and bench/results.json
    python -m bench.run --quick    # tiny sizes, one repeat, no chapters (the test suite runs it)
    python -m bench.run --no-chapters --out /tmp/bench   # the speed measurements only
    python -m bench.run --only gpt --out /tmp/bench      # only the GPT training-speed ratios
    python -m bench.run --only gpt --update    # re-measure them in bench/results.json in place
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from bench.gpt_speed import gpt_details, gpt_rows, gpt_speed, ratio
from bench.timing import Timing, interleaved
from llmbook_utils.attention import MultiHeadAttention
from llmbook_utils.cache import write_atomic
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.train import TrainConfig, make_optimizer, train

ROOT = Path(__file__).resolve().parents[1]


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


def chapter_paths() -> list[Path]:
    """The chapters' notebooks, in order."""
    return sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def run_chapters(
    profile: str, stems: list[str] | None = None
) -> tuple[dict[str, float], dict[str, dict[str, str]], dict[str, str]]:
    """Execute every chapter (or those named in ``stems``) in ``profile``; return their times,
    the values each chapter glued, and the chapters that stopped on an error (a failed quality
    bar's assertion, say) with the error's first line. A failing chapter does not stop the run:
    its notebook is kept as far as it got, and what it glued before the error still counts."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from llmbook_utils.notebook import read_glued

    out_dir = ROOT / "bench" / "_runs" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    env_before = dict(os.environ)
    os.environ.update(LLMBOOK_PROFILE=profile, LLMBOOK_STATIC="1", HF_HUB_OFFLINE="1")
    times, glued, failures = {}, {}, {}
    try:
        for path in chapter_paths():
            if stems is not None and path.stem not in stems:
                continue
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            try:
                NotebookClient(
                    nb,
                    timeout=1800,
                    kernel_name="python3",
                    resources={"metadata": {"path": str(path.parent)}},
                ).execute()
            except CellExecutionError as err:
                failures[path.stem] = error_line(err)
            times[path.stem] = time.perf_counter() - start
            nbformat.write(nb, out_dir / path.name)
            glued[path.stem] = read_glued(out_dir / path.name)
            status = f"  FAILED: {failures[path.stem]}" if path.stem in failures else ""
            print(f"  {profile:5s} {path.stem:28s} {times[path.stem]:7.1f} s{status}", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return times, glued, failures


def error_line(err: Exception) -> str:
    """The ``Name: message`` line of a notebook cell's error, without the traceback."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the kernel's traceback is coloured
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line)]
    return (named[-1] if named else lines[-1] if lines else type(err).__name__)[:300]


def run_profiles(
    stems: list[str] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Run the chapters (or ``stems``) in ``smoke`` and ``cpu``: their times by profile, the
    values glued in the ``cpu`` run, and the errors by chapter and profile."""
    chapter_seconds: dict[str, dict[str, float]] = {}
    glued: dict[str, dict[str, str]] = {}
    failures: dict[str, dict[str, str]] = {}
    for profile in ("smoke", "cpu"):
        print(f"chapters {', '.join(stems or ['(all)'])}, {profile} profile", flush=True)
        times, values, failed = run_chapters(profile, stems)
        for chapter, seconds in times.items():
            chapter_seconds.setdefault(chapter, {})[profile] = seconds
        for chapter, message in failed.items():
            failures.setdefault(chapter, {})[profile] = message
        if profile == "cpu":
            glued = values
    return chapter_seconds, glued, failures


# The report's headline rows, results.json's top-level keys: copies of these quality numbers.
HEADLINE_KEYS = {
    "shakespeare_val_loss_cpu": "ch7_val_loss",
    "finetune_macro_f1": "ch9_finetune_macro_f1",
    "tfidf_macro_f1": "ch9_tfidf_macro_f1",
}


def headline(quality_numbers: dict[str, object]) -> dict[str, object]:
    """The top-level copies of the quality numbers that the report's headline rows show."""
    return {key: quality_numbers.get(name) for key, name in HEADLINE_KEYS.items()}


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))  # an interrupted run keeps the previous file


def refresh_chapters(stems: list[str], out: Path) -> dict:
    """Re-run only the chapters ``stems`` (both profiles) and update their times and quality
    numbers in an existing ``results.json``; the speed ratios and other chapters are kept, and
    ``chapters_refreshed`` records which chapters were measured on which date."""
    known = {p.stem for p in chapter_paths()}
    unknown = sorted(set(stems) - known)
    if unknown:
        raise ValueError(f"no chapter named {unknown}; the chapters are {sorted(known)}")
    path = out / "results.json"
    if not path.exists():
        raise ValueError(f"{path} does not exist: run `make bench` once before refreshing chapters")
    results = json.loads(path.read_text())
    chapter_seconds, glued, failures = run_profiles(stems)
    for chapter, seconds in chapter_seconds.items():
        results["chapter_seconds"].setdefault(chapter, {}).update(seconds)
    kept = {k: v for k, v in results.get("chapter_failures", {}).items() if k not in stems}
    results["chapter_failures"] = {**kept, **failures}
    fresh = quality(glued)
    names = {name for stem in stems for name in QUALITY_KEYS.get(stem, [])}
    results["quality"] = {
        name: fresh[name] if name in names else results.get("quality", {}).get(name)
        for name in fresh
    }
    results.update(
        {k: v for k, v in headline(results["quality"]).items() if HEADLINE_KEYS[k] in names}
    )
    today = time.strftime("%Y-%m-%d")
    results.setdefault("chapters_refreshed", {}).update({stem: today for stem in stems})
    _write_text(path, json.dumps(results, indent=2) + "\n")
    if "gpt_ch7" in results:
        write_report(results, out / "report.md")
    else:  # speed figures from an older `make bench`, which this report cannot show
        print(f"{path} is from an older `make bench`: run it in full to rewrite report.md")
    return results


# What `--only gpt` measures; `--only speed` adds the rest of the speed section.
GPT_SPEED_KEYS = (
    "matmul_gflops", "gpt_vs_hf_speedup_1m", "gpt_vs_hf_speedup_10m",
    "gpt_vs_hf_exact_gelu_speedup_1m", "gpt_vs_hf_exact_gelu_speedup_10m", "gpt_vs_minimal_ch7",
    "gpt_vs_minimal_1m", "gpt_vs_minimal_10m", "mfu_10m", "gpt_ch7", "gpt_1m", "gpt_10m",
)  # fmt: skip
OTHER_SPEED_KEYS = ("train_loop_vs_bare", "mha_vs_torch", "kv_cache_speedup", "kv")


def merge_speed(fresh: dict, path: Path, only: str) -> dict:
    """``fresh``'s speed measurements written over the results in ``path``, the rest kept.

    ``speed_refreshed`` records the date and which measurements (``gpt`` or ``speed``); the
    matmul peak is re-measured with them, so the report's peak is the one the ratios ran next to.
    """
    if not path.exists():
        raise ValueError(f"{path} does not exist: run `make bench` once before --update")
    results = json.loads(path.read_text())
    keys = GPT_SPEED_KEYS + (OTHER_SPEED_KEYS if only == "speed" else ())
    results.update({k: fresh[k] for k in keys})
    results["machine"] = fresh["machine"]
    results["speed_refreshed"] = {"date": fresh["date"], "only": only}
    return results


# The quality numbers each chapter glues under a book-wide name (issues' `bench/results.json`
# keys), collected from the `cpu` run: chapter stem -> glue names.
QUALITY_KEYS = {
    "01_history": ["flops_vs_6nd"],
    "02_deep_learning_basics": ["digits_mlp_accuracy"],
    "03_architectures": [
        "digits_cnn_accuracy", "lstm_adding_mse", "rnn_grad_ratio_100", "lstm_vs_gpt_val_loss"
    ],
    "05_transformer": ["ch5_exact_match"],
    "06_tokenization": ["bpe_merges_equal_tokenizers", "bpe_vs_char_bpc"],
    "07_gpt_pretraining": [
        "ch7_val_loss", "ch7_test_loss", "ch7_train_seconds", "smollm2_bits_per_char",
        "gpt_bits_per_char",
    ],
    "08_bert_pretraining": [
        "mlm_masked_accuracy", "bert_pretrain_gain", "simcse_recall_at_1_before",
        "simcse_recall_at_1_after",
    ],
    "09_finetuning": ["ch9_finetune_macro_f1", "ch9_tfidf_macro_f1", "ch9_finetune_margin"],
    "10_peft": ["lora_r8_f1_ratio", "lora_r8_trainable_share", "llama_vs_hf_max_abs_logit_diff"],
    "11_prompt_learning": [
        "icl_accuracy_by_k", "fewshot_f1_by_k", "sft_exact_match_masked", "sft_exact_match_unmasked"
    ],
    "12_1_customer_service": [
        "intent_macro_f1", "faq_recall_at_1_dense", "faq_recall_at_1_bm25", "zh_sentiment_macro_f1"
    ],
    "12_2_content_generation": ["headline_rouge_l"],
    "12_3_knowledge_graphs": ["ner_entity_f1", "transe_hits_at_10"],
    "13_scaling": [
        "ddp_max_param_diff", "accum_max_param_diff", "compile_speedup",
        "checkpointing_memory_ratio", "scaling_fit_heldout_error",
    ],
    "14_evaluation_deployment": [
        "bleu_abs_diff_sacrebleu", "rouge_abs_diff", "int8_size_ratio", "int8_f1_drop",
        "int8_speedup", "serve_p95_ms", "serve_requests_per_s",
    ],
    "15_future": [
        "induction_head_score", "induction_ablation_nats", "canary_exposure_by_k",
        "weat_effect_sizes", "distilled_student_f1",
    ],
}  # fmt: skip


def _value(text: str | None) -> object:
    """A glued ``text/plain`` value as a Python number, bool, list or dict where it parses."""
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text.strip("'\"")


def quality(glued: dict[str, dict[str, str]]) -> dict[str, object]:
    """Every chapter's quality numbers, by their book-wide glue names (None where not run)."""
    return {
        name: _value(glued.get(chapter, {}).get(name))
        for chapter, names in QUALITY_KEYS.items()
        for name in names
    }


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def spread(low_high: list[float]) -> str:
    return f"{low_high[0]:.3f}-{low_high[1]:.3f}"


def write_report(results: dict, path: Path) -> None:
    m = results["machine"]
    r = results
    cs = r["chapter_seconds"]
    m10 = r["gpt_10m"]["params"] / 1e6 if r.get("gpt_10m") else None
    lines = [
        "# Benchmark report",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
        f"torch {m['torch']}, Python {m['python']}"
        + (f", GPU {m['cuda']}" if m["cuda"] else ", no GPU")
        + f". Measured float32 matmul peak: {r['matmul_gflops']:.0f} GFLOP/s. "
        f"Generated by `make bench` on {r['date']}"
        + (" (quick mode: tiny sizes, not meaningful)" if r["quick"] else "")
        + "."
        + (
            f" The {'GPT ' if r['speed_refreshed']['only'] == 'gpt' else ''}speed ratios and the"
            f" matmul peak re-measured on {r['speed_refreshed']['date']} (`--only "
            f"{r['speed_refreshed']['only']} --update`)."
            if r.get("speed_refreshed")
            else ""
        )
        + "".join(
            f" Chapter {stem} re-measured on {day} (`--chapters`)."
            for stem, day in sorted(r.get("chapters_refreshed", {}).items())
        ),
        "",
        "| measure | result | goal |",
        "|---|---|---|",
        *gpt_rows(r),
        f"| model FLOPs utilisation at {fmt(m10, '.1f')}M params (of measured peak)"
        f" | {fmt(None if r['mfu_10m'] is None else 100 * r['mfu_10m'], '.0f')}% | >= 50% |",
        f"| `train()` vs a bare loop (tokens/s) | {ratio(r['train_loop_vs_bare'])} | >= 0.95x |",
        f"| MultiHeadAttention vs nn.MultiheadAttention (forward + backward) "
        f"| {ratio(r['mha_vs_torch'])} | >= 1.0x |",
        f"| KV-cache generation speed-up, 200 new tokens | {ratio(r['kv_cache_speedup'])} | > 1x |",
        f"| char-level Shakespeare validation loss, chapter 7 (`cpu` profile) "
        f"| {fmt(r['shakespeare_val_loss_cpu'], '.3f')} nats/char | <= 1.60 |",
        f"| tweet sentiment macro-F1: fine-tuned MiniLM vs TF-IDF + logistic regression "
        f"| {fmt(r['finetune_macro_f1'], '.3f')} vs {fmt(r['tfidf_macro_f1'], '.3f')} | >= +0.05 |",
        "",
        "## Chapter execution times",
        "",
        "| chapter | smoke (s) | cpu (s) |",
        "|---|---|---|",
    ]
    for chapter, t in sorted(cs.items()):
        lines.append(f"| {chapter} | {fmt(t.get('smoke'), '.0f')} | {fmt(t.get('cpu'), '.0f')} |")
    if not cs:
        lines.append("| (chapters not run) | | |")
    failed = r.get("chapter_failures", {})
    if failed:
        lines += ["", "Chapters that stopped on an error (their numbers up to that cell are kept):",
                  ""]  # fmt: skip
        lines += [
            f"- {chapter} ({profile}): `{message}`"
            for chapter, by_profile in sorted(failed.items())
            for profile, message in by_profile.items()
        ]
    lines += ["", "## Quality numbers of the chapters (`cpu` profile)", "",
              "| name | value |", "|---|---|"]  # fmt: skip
    for name, value in r.get("quality", {}).items():
        shown = "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else value)
        lines.append(f"| `{name}` | {shown} |")
    lines += [
        "",
        "## Details",
        "",
        *gpt_details(r),
        *(
            [
                f"- KV cache: {r['kv']['cache_tokens_per_s']:.0f} tok/s with, "
                f"{r['kv']['no_cache_tokens_per_s']:.0f} tok/s without"
            ]
            if r.get("kv")
            else []
        ),
        "- Speed ratios are medians of interleaved repeats after a warm-up (same loop, same "
        "batch, same fused AdamW for every model); the spread is the fastest and slowest repeat.",
        "- GPT2LMHeadModel gets our weights through `gpt_to_hf`, so both compute the same "
        "function; GPT-2's own activation `gelu_new` is GELU's tanh form written as separate "
        "elementwise operations, ours one fused kernel.",
        "",
    ]
    _write_text(path, "\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, no chapters")
    parser.add_argument(
        "--only",
        choices=("all", "speed", "gpt"),
        default="all",
        help="speed: no chapters; gpt: only the GPT training-speed ratios",
    )
    parser.add_argument("--no-chapters", action="store_true", help="the same as --only speed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where to write")
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --only: replace only the measurements this run makes in an existing "
        "results.json (chapters and the other ratios are kept)",
    )
    parser.add_argument(
        "--chapters",
        nargs="+",
        metavar="STEM",
        help="only re-run these chapters (e.g. 13_scaling) and update results.json in place",
    )
    args = parser.parse_args(argv)
    only = "speed" if args.no_chapters and args.only == "all" else args.only
    if args.update and (only == "all" or args.quick):
        raise ValueError("--update goes with --only speed or --only gpt, without --quick")
    if args.chapters:
        return refresh_chapters(args.chapters, args.out)
    q = args.quick
    repeats = args.repeats or (1 if q else 5)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    def gpt_cfg(ctx: int, d: int, layers: int, heads: int, vocab: int = 96) -> GPTConfig:
        if q:
            return GPTConfig(vocab_size=96, context_length=16, d_model=32, n_layers=1, n_heads=2)
        return GPTConfig(
            vocab_size=vocab, context_length=ctx, d_model=d, n_layers=layers, n_heads=heads
        )

    print("machine and matmul peak", flush=True)
    peak = matmul_gflops(256 if q else 2048, repeats).median
    print("GPT vs transformers and the minimal GPT", flush=True)
    # Chapter 7's `cpu` model: 84 characters, context 128, 96 wide, 3 layers, 4 heads, batch 16.
    if q:  # one tiny model stands in for all three sizes
        gpt_ch7 = gpt_1m = gpt_10m = gpt_speed(gpt_cfg(0, 0, 0, 0), 4, 1, repeats, peak)
    else:
        gpt_ch7 = gpt_speed(gpt_cfg(128, 96, 3, 4, vocab=84), 16, 5, repeats, peak)
        gpt_1m = gpt_speed(gpt_cfg(128, 128, 5, 4), 32, 3, repeats, peak)
        gpt_10m = gpt_speed(gpt_cfg(256, 384, 6, 6), 16, 3, repeats, peak)
    loop = mha = kv = None
    if only != "gpt":
        print("train() vs bare loop", flush=True)
        loop = train_loop_vs_bare(gpt_cfg(128, 128, 5, 4), 4 if q else 32, 3 if q else 40, repeats)
        print("attention", flush=True)
        mha = mha_vs_torch(
            32 if q else 256, 2 if q else 8, 2 if q else 16, 8 if q else 128, repeats
        )
        print("KV cache", flush=True)
        kv = kv_cache_speedup(gpt_cfg(256, 128, 4, 4), 8 if q else 200, repeats)

    chapter_seconds: dict[str, dict[str, float]] = {}
    glued: dict[str, dict[str, str]] = {}
    failures: dict[str, dict[str, str]] = {}
    if not q and only == "all":
        chapter_seconds, glued, failures = run_profiles()
    quality_numbers = quality(glued)

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": q,
        "machine": describe_machine(),
        "matmul_gflops": peak,
        # Identical configuration (GPT-2's, GELU tanh form) in both: the headline ratios.
        "gpt_vs_hf_speedup_1m": gpt_1m["speedup_gpt2"],
        "gpt_vs_hf_speedup_10m": gpt_10m["speedup_gpt2"],
        "gpt_vs_hf_exact_gelu_speedup_1m": gpt_1m["speedup_exact"],
        "gpt_vs_hf_exact_gelu_speedup_10m": gpt_10m["speedup_exact"],
        "gpt_vs_minimal_ch7": gpt_ch7["vs_minimal"],
        "gpt_vs_minimal_1m": gpt_1m["vs_minimal"],
        "gpt_vs_minimal_10m": gpt_10m["vs_minimal"],
        "mfu_10m": gpt_10m["mfu"],
        "train_loop_vs_bare": loop["ratio"] if loop else None,
        "mha_vs_torch": mha["ratio"] if mha else None,
        "kv_cache_speedup": kv["speedup"] if kv else None,
        **headline(quality_numbers),
        "quality": quality_numbers,
        "chapter_seconds": chapter_seconds,
        "chapter_failures": failures,
        "gpt_ch7": gpt_ch7,
        "gpt_1m": gpt_1m,
        "gpt_10m": gpt_10m,
        "kv": kv,
    }
    if args.update:
        results = merge_speed(results, args.out / "results.json", only)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    write_report(results, args.out / "report.md")
    print((args.out / "report.md").read_text())
    return results


if __name__ == "__main__":
    main()
