"""`make bench` harness, run in quick mode (tiny sizes, one repeat) so it cannot rot.

No timing is asserted: the test checks that every figure is measured and reported.
"""

from __future__ import annotations

import json
import math

from bench.run import main

RATIOS = [
    "matmul_gflops",
    "gpt_vs_hf_speedup_1m",
    "gpt_vs_hf_speedup_10m",
    "gpt_vs_hf_exact_gelu_speedup_1m",
    "gpt_vs_hf_exact_gelu_speedup_10m",
    "gpt_vs_minimal_ch7",
    "gpt_vs_minimal_1m",
    "gpt_vs_minimal_10m",
    "mfu_10m",
    "train_loop_vs_bare",
    "mha_vs_torch",
    "kv_cache_speedup",
]
KEYS = [
    "machine",
    *RATIOS,
    "shakespeare_val_loss_cpu",
    "finetune_macro_f1",
    "tfidf_macro_f1",
    "chapter_seconds",
]


def test_quick_bench_writes_every_figure(tmp_path):
    main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(KEYS) <= set(results)
    for key in RATIOS:
        assert math.isfinite(results[key]) and results[key] > 0, key
    for size in ("gpt_ch7", "gpt_1m", "gpt_10m"):
        assert set(results[size]["tokens_per_s"]) == {
            "ours_gelu_tanh",
            "hf_gelu_new",
            "ours_gelu",
            "hf_gelu",
            "minimal",
        }
    assert results["machine"]["cores"] >= 1
    report = (tmp_path / "report.md").read_text()
    assert "GPT2LMHeadModel" in report and "quick mode" in report
    assert "minimal nanoGPT-style GPT" in report


def test_minimal_gpt_computes_the_same_function_as_ours() -> None:
    """The speed yardstick does the same arithmetic: with our weights it gives our logits."""
    import torch

    from bench.minimal_gpt import MinimalGPT
    from llmbook_utils.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=30, context_length=12, d_model=16, n_layers=2, n_heads=2)
    ours, minimal = GPT(config).eval(), MinimalGPT(config).eval()
    names = {"tok_emb": "wte", "pos_emb": "wpe", "norm_f": "ln_f", "lm_head": "lm_head"}
    block = {"norm1": "ln_1", "attn.qkv": "attn.c_attn", "attn.out_proj": "attn.c_proj"}
    block |= {"norm2": "ln_2", "ff.linear1": "c_fc", "ff.linear2": "c_proj"}
    state = {}
    for key, tensor in ours.state_dict().items():
        parts = key.split(".")
        if parts[0] == "blocks":
            inner = ".".join(parts[2:-1])
            state[f"h.{parts[1]}.{block[inner]}.{parts[-1]}"] = tensor
        else:
            state[f"{names[parts[0]]}.{parts[-1]}"] = tensor
    minimal.load_state_dict(state)
    idx = torch.randint(0, 30, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(minimal(idx, idx)[0], ours(idx, idx)[0])
        torch.testing.assert_close(minimal(idx, idx)[1], ours(idx, idx)[1])


def test_refreshing_chapters_updates_only_their_numbers(tmp_path, monkeypatch):
    import pytest

    import bench.run as bench_run

    old = {
        "chapter_seconds": {"07_gpt_pretraining": {"smoke": 30.0, "cpu": 200.0}},
        "quality": {"ch7_val_loss": 1.63, "compile_speedup": None},
        "chapter_failures": {
            "07_gpt_pretraining": {"cpu": "AssertionError: bar"},
            "13_scaling": {"cpu": "an old failure, gone once re-run"},
        },
    }
    (tmp_path / "results.json").write_text(json.dumps(old))
    monkeypatch.setattr(bench_run, "write_report", lambda results, path: None)

    def fake_run(profile, stems):
        assert stems == ["13_scaling"]
        return (
            {"13_scaling": 12.0 if profile == "smoke" else 150.0},
            {"13_scaling": {"compile_speedup": "1.25", "ch7_val_loss": "9.9"}},
            {},
        )

    monkeypatch.setattr(bench_run, "run_chapters", fake_run)
    results = bench_run.refresh_chapters(["13_scaling"], tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results
    assert saved["chapter_seconds"]["13_scaling"] == {"smoke": 12.0, "cpu": 150.0}
    assert saved["chapter_seconds"]["07_gpt_pretraining"] == {"smoke": 30.0, "cpu": 200.0}
    assert saved["quality"]["compile_speedup"] == 1.25
    assert saved["quality"]["ch7_val_loss"] == 1.63  # another chapter's key is not taken over
    assert list(saved["chapters_refreshed"]) == ["13_scaling"]
    assert saved["chapter_failures"] == {"07_gpt_pretraining": {"cpu": "AssertionError: bar"}}
    with pytest.raises(ValueError, match="13_scalin"):
        bench_run.refresh_chapters(["13_scalin"], tmp_path)


def test_updating_the_gpt_speed_keeps_the_chapters(tmp_path):
    """`--only gpt --update` replaces the GPT ratios and the peak, nothing else."""
    import pytest

    from bench.run import merge_speed, write_report

    main(["--quick", "--out", str(tmp_path)])
    old = json.loads((tmp_path / "results.json").read_text())
    old["chapter_seconds"] = {"07_gpt_pretraining": {"smoke": 30.0, "cpu": 500.0}}
    old["quality"] = {"ch7_val_loss": 1.59}
    (tmp_path / "results.json").write_text(json.dumps(old))
    fresh = {**old, "date": "2030-01-02", "matmul_gflops": 99.0, "gpt_vs_minimal_ch7": 1.5}
    fresh |= {"train_loop_vs_bare": None, "chapter_seconds": {}, "quality": {}}
    merged = merge_speed(fresh, tmp_path / "results.json", "gpt")
    assert merged["matmul_gflops"] == 99.0 and merged["gpt_vs_minimal_ch7"] == 1.5
    assert merged["train_loop_vs_bare"] == old["train_loop_vs_bare"]  # not re-measured: kept
    assert merged["chapter_seconds"] == old["chapter_seconds"]
    assert merged["quality"] == {"ch7_val_loss": 1.59}
    assert merged["speed_refreshed"] == {"date": "2030-01-02", "only": "gpt"}
    write_report(merged, tmp_path / "report.md")
    assert (
        "GPT speed ratios and the matmul peak re-measured on 2030-01-02"
        in (tmp_path / "report.md").read_text()
    )
    with pytest.raises(ValueError, match="does not exist"):
        merge_speed(fresh, tmp_path / "missing.json", "gpt")
    with pytest.raises(ValueError, match="--update goes with"):
        main(["--update", "--out", str(tmp_path)])


def test_a_failing_chapter_is_reported_and_the_run_goes_on(tmp_path, monkeypatch):
    """A chapter that stops on an error (a quality bar's assertion) keeps what it glued before
    the error, its error line is recorded, and the chapters after it still run."""
    import nbformat

    import bench.run as bench_run

    chapters = tmp_path / "chapters"
    chapters.mkdir()
    cells = {
        "01_fails": ["from llmbook_utils.notebook import glue\nglue('before', 1.5)",
                     "assert 2 < 1, 'the bar is 1'", "glue('after', 2.5)"],
        "02_runs": ["from llmbook_utils.notebook import glue\nglue('fine', 3)"],
    }  # fmt: skip
    for stem, sources in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
        nbformat.write(nb, chapters / f"{stem}.ipynb")
    monkeypatch.setattr(bench_run, "ROOT", tmp_path)
    times, glued, failures = bench_run.run_chapters("smoke")
    assert sorted(times) == ["01_fails", "02_runs"]
    assert failures == {"01_fails": "AssertionError: the bar is 1"}
    assert glued["01_fails"]["before"] == "1.5" and "after" not in glued["01_fails"]
    assert glued["02_runs"]["fine"] == "3"
