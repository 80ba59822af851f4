"""Saving, exporting and quantising trained models for deployment.

- ``serialized_bytes``: the size of a model's weights as ``torch.save`` writes them.
- ``char_tokenizer_to_hf`` and ``export_gpt``: our character GPT and its tokenizer in the Hugging
  Face format (``hf.gpt_to_hf`` + ``save_pretrained``), loadable by ``transformers.pipeline``.
- ``export_classifier_onnx`` and ``OnnxClassifier``: a ``MeanPoolingClassifier`` as an ONNX graph
  with dynamic batch and sequence axes, run by ONNX Runtime.
- ``quantize_int8``: post-training dynamic quantisation (Jacob et al., 2018,
  https://arxiv.org/abs/1712.05877): every ``nn.Linear`` stores int8 weights with one scale per
  tensor and quantises its input on the fly, batch by batch; ``nn.Embedding`` tables can be
  stored as int8 rows with one scale and offset per row (weight-only). This uses
  ``torch.ao.quantization.quantize_dynamic``, which torch 2.13 still ships (with a
  DeprecationWarning pointing to torchao, whose CPU int8 path needs ``torch.compile``).

Shape legend: B batch, T time (tokens), K classes.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from llmbook_utils.cache import write_dir_atomic


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what a checkpoint of the weights costs."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


# ---------------------------------------------------------------------------------------------
# Hugging Face format
# ---------------------------------------------------------------------------------------------


def char_tokenizer_to_hf(tokenizer: Any) -> Any:
    """A ``PreTrainedTokenizerFast`` giving the same ids as our ``CharTokenizer``.

    One token per character (a ``WordLevel`` vocabulary over the characters, split into single
    characters, newlines included) and a decoder that joins the characters without spaces.
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as RawTokenizer
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(tokenizer.itos)}
    raw = RawTokenizer(models.WordLevel(vocab, unk_token=tokenizer.itos[0]))
    raw.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    raw.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=raw, clean_up_tokenization_spaces=False)


def export_gpt(model: nn.Module, tokenizer: Any, directory: str | os.PathLike) -> Path:
    """Save our ``GPT`` and its ``CharTokenizer`` as a Hugging Face model folder.

    The folder holds ``config.json``, ``model.safetensors`` (the tied embedding stored once) and
    the tokenizer files; ``transformers.pipeline("text-generation", model=directory)`` loads it.
    It is written next to ``directory`` and renamed into place, replacing an earlier export only
    once the new one is complete.
    """
    from llmbook_utils.hf import gpt_to_hf

    directory = Path(directory)
    hf_model = gpt_to_hf(model)
    hf_model.generation_config.pad_token_id = 0  # no padding token: silences a warning
    hf_tokenizer = char_tokenizer_to_hf(tokenizer)

    def save(folder: Path) -> None:
        hf_model.save_pretrained(folder)
        hf_tokenizer.save_pretrained(folder)

    write_dir_atomic(directory, save, replace=True)  # an earlier export survives a failed one
    return directory


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------


class _LogitsOnly(nn.Module):
    """``(input_ids, attention_mask) -> logits``: the graph an inference server needs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        logits, _ = self.model(input_ids, attention_mask)
        return logits  # (B, K)


def export_classifier_onnx(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    path: str | os.PathLike,
    dynamo: bool = True,
) -> Path:
    """Export a classifier ``(input_ids, attention_mask) -> (logits, loss)`` to ONNX.

    Args:
        model: e.g. a ``MeanPoolingClassifier``; exported in evaluation mode, on the CPU.
        input_ids: (B, T) an example batch (traced; B and T stay dynamic).
        attention_mask: (B, T) its mask.
        path: the ``.onnx`` file.
        dynamo: the ``torch.export`` exporter (the default since torch 2.9, needs
            ``onnxscript``); False uses the older TorchScript tracer, faster to run but
            deprecated.

    Returns:
        The path of the ONNX file (inputs ``input_ids``, ``attention_mask``; output ``logits``).
    """
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask "
            f"{tuple(attention_mask.shape)} must both be (B, T)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # renamed when complete
    wrapper = _LogitsOnly(copy.deepcopy(model).cpu()).eval()
    args = (input_ids.cpu(), attention_mask.cpu())
    names = {"input_names": ["input_ids", "attention_mask"], "output_names": ["logits"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks: constants
            if dynamo:
                batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", min=2)
                shapes = ({0: batch, 1: seq}, {0: batch, 1: seq})
                torch.onnx.export(
                    wrapper, args, str(tmp), dynamo=True, dynamic_shapes=shapes, verbose=False,
                    **names,
                )  # fmt: skip
            else:
                axes = {
                    "input_ids": {0: "batch", 1: "seq"},
                    "attention_mask": {0: "batch", 1: "seq"},
                }
                torch.onnx.export(wrapper, args, str(tmp), dynamo=False, dynamic_axes=axes, **names)
        os.replace(tmp, path)  # a failed export leaves an earlier file as it was
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OnnxClassifier:
    """An ONNX classifier run by ONNX Runtime on the CPU.

    Args:
        path: the file ``export_classifier_onnx`` wrote.
        threads: intra-op threads of ONNX Runtime (compare with ``torch.set_num_threads``).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        import onnxruntime as ort

        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: Tensor | np.ndarray, attention_mask: Tensor | np.ndarray):
        """Logits (B, K) as a NumPy array."""
        feed = {
            "input_ids": np.asarray(input_ids, dtype=np.int64),
            "attention_mask": np.asarray(attention_mask, dtype=np.int64),
        }
        return self.session.run(["logits"], feed)[0]


# ---------------------------------------------------------------------------------------------
# int8 dynamic quantisation
# ---------------------------------------------------------------------------------------------


def quantize_int8(
    model: nn.Module,
    embeddings: bool = True,
    per_channel: bool = False,
    keep_float: Sequence[str] = (),
) -> nn.Module:
    """A copy of ``model`` with int8 ``nn.Linear`` layers (and ``nn.Embedding`` tables).

    Linear layers become ``DynamicQuantizedLinear``: int8 weights (one symmetric scale per
    matrix, or per output row with ``per_channel``), activations quantised per batch at run
    time with one scale per tensor, int8 matrix products (fbgemm on x86). Embedding tables
    become int8 rows with a float scale and offset each (``float_qparams_weight_only_qconfig``).
    Runs on the CPU only; the original model is left unchanged.

    Args:
        model: a float32 model (evaluation mode is set on the copy).
        embeddings: also quantise ``nn.Embedding`` tables (most of a small encoder's bytes).
        per_channel: one weight scale per output row instead of one per matrix.
        keep_float: qualified names of submodules left in float32, with everything inside them
            (e.g. ``["classifier"]``: a small output layer whose errors reach the logits
            undamped, a common exception).
    """
    names = {name for name, _ in model.named_modules()}
    unknown = [name for name in keep_float if name not in names]
    if unknown:
        raise ValueError(f"keep_float names {unknown} are not submodules of the model")
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    linear = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    spec: dict[type[nn.Module], Any] = {nn.Linear: linear}
    if embeddings:
        spec[nn.Embedding] = float_qparams_weight_only_qconfig
    spec.update({name: None for name in keep_float})  # a name overrides its type's qconfig
    float_copy = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        # "torch.ao.quantization is deprecated": still the eager int8 path with fbgemm kernels.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        return quantize_dynamic(float_copy, spec, dtype=torch.qint8)
