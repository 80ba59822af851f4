"""`make bench` harness, run in quick mode (tiny sizes, one repeat) so it cannot rot.

No timing is asserted: the test checks that every figure is measured and reported.
"""

from __future__ import annotations

import json
import math

from bench.run import main

KEYS = [
    "machine",
    "matmul_gflops",
    "gpt_vs_hf_speedup_1m",
    "gpt_vs_hf_speedup_10m",
    "mfu_10m",
    "train_loop_vs_bare",
    "mha_vs_torch",
    "kv_cache_speedup",
    "shakespeare_val_loss_cpu",
    "finetune_macro_f1",
    "tfidf_macro_f1",
    "chapter_seconds",
]


def test_quick_bench_writes_every_figure(tmp_path):
    main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(KEYS) <= set(results)
    for key in KEYS[1:8]:
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["machine"]["cores"] >= 1
    report = (tmp_path / "report.md").read_text()
    assert "GPT2LMHeadModel" in report and "quick mode" in report
