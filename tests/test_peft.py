"""Parameter-efficient fine-tuning against references: Hugging Face ``peft`` (LoRA outputs,
gradients and parameter counts with copied factors), ``transformers`` (prompt tuning through
``inputs_embeds``, prefix tuning through ``past_key_values``), ``torch.nn.MultiheadAttention``
(a one-position prefix is its ``add_bias_kv``) and formulas (initialisation, merge)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.hf import bert_from_hf, gpt_from_hf
from llmbook_utils.peft import (
    LoRALinear,
    PrefixTuning,
    PromptTuning,
    add_adapters,
    apply_lora,
    apply_prefix_tuning,
    apply_prompt_tuning,
    bitfit,
    lora_layers,
    merge_lora,
    trainable_parameters,
    unmerge_lora,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_hf_bert():
    from transformers import BertConfig as HFBertConfig
    from transformers import BertModel

    torch.manual_seed(0)
    config = HFBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64,
                          max_position_embeddings=64, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)  # fmt: skip
    return BertModel(config).eval()


def tiny_hf_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    return GPT2LMHeadModel(config).eval()


def randomise_lora_b(peft_model, seed=1):
    """peft starts B at zero; give it values so that the low-rank branch matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def copy_factors(peft_model, ours, name_map):
    """Copy every peft lora_A/lora_B into our LoRALinear named by ``name_map(peft_name)``."""
    copied = 0
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                target = ours.get_submodule(name_map(name))
                target.lora_A.copy_(module.lora_A["default"].weight)
                target.lora_B.copy_(module.lora_B["default"].weight)
                copied += 1
    return copied


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------


def test_lora_linear_starts_as_the_base_layer_with_peft_initialisation():
    torch.manual_seed(0)
    base = nn.Linear(64, 48)
    lora = LoRALinear(base, r=8, alpha=16)
    x = torch.randn(5, 64)
    assert torch.equal(lora(x), base(x))  # B = 0: step 0 equals the base model
    assert torch.count_nonzero(lora.lora_B) == 0 and lora.scaling == 2.0
    bound = 1 / math.sqrt(64)  # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert lora.lora_A.abs().max() <= bound and lora.lora_A.abs().max() > 0.9 * bound
    assert not base.weight.requires_grad and not base.bias.requires_grad


def test_lora_on_bert_equals_peft_outputs_gradients_and_counts():
    from peft import LoraConfig, get_peft_model

    hf = tiny_hf_bert()
    ours = bert_from_hf(hf)
    peft_model = get_peft_model(
        copy.deepcopy(hf),
        LoraConfig(r=4, lora_alpha=8, target_modules=["query", "key", "value",
                                                       "attention.output.dense"]),
    )  # fmt: skip
    randomise_lora_b(peft_model)
    wrapped = apply_lora(ours, ["q_proj", "k_proj", "v_proj", "out_proj"], r=4, alpha=8)
    assert len(wrapped) == 8

    def name_map(name):  # base_model.model.encoder.layer.0.attention.self.query -> ours
        parts = name.split(".")
        i = parts[parts.index("layer") + 1]
        kind = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "dense": "out_proj"}
        return f"layers.{i}.self_attn.{kind[parts[-1]]}"

    assert copy_factors(peft_model, ours, name_map) == 8
    ids = torch.randint(1, 99, (3, 11))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    theirs = peft_model(input_ids=ids, attention_mask=mask).last_hidden_state
    mine, _, _ = ours.encode(ids, attention_mask=mask)
    real = mask.bool()
    assert (theirs - mine)[real].abs().max() < 1e-6

    weights = torch.randn(theirs.shape)  # a loss: the mean of a random projection
    (theirs[real] * weights[real]).mean().backward()
    (mine[real] * weights[real]).mean().backward()
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            layer = ours.get_submodule(name_map(name))
            assert (module.lora_A["default"].weight.grad - layer.lora_A.grad).abs().max() < 1e-6
            assert (module.lora_B["default"].weight.grad - layer.lora_B.grad).abs().max() < 1e-6
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable_parameters(ours).trainable == trainable == 8 * 4 * (32 + 32)


def test_lora_on_gpt_fused_qkv_equals_peft_on_gpt2_conv1d():
    from peft import LoraConfig, get_peft_model

    hf = tiny_hf_gpt2()
    ours = gpt_from_hf(hf)
    peft_model = get_peft_model(
        copy.deepcopy(hf),
        LoraConfig(r=2, lora_alpha=5, target_modules=["c_attn", "attn.c_proj"],
                   fan_in_fan_out=True),  # GPT-2's Conv1D stores (in, out)
    )  # fmt: skip
    randomise_lora_b(peft_model)
    apply_lora(ours, ["qkv", "attn.out_proj"], r=2, alpha=5)

    def name_map(name):  # ...transformer.h.1.attn.c_attn -> blocks.1.attn.qkv
        parts = name.split(".")
        i = parts[parts.index("h") + 1]
        return f"blocks.{i}.attn." + {"c_attn": "qkv", "c_proj": "out_proj"}[parts[-1]]

    assert copy_factors(peft_model, ours, name_map) == 4
    ids = torch.randint(0, 97, (2, 13))
    theirs = peft_model(input_ids=ids).logits
    mine, _ = ours(ids)
    assert (theirs - mine).abs().max() < 1e-6
    targets = torch.randint(0, 97, (2 * 13,))  # the language-model loss on random targets
    F.cross_entropy(theirs.flatten(0, 1), targets).backward()
    F.cross_entropy(mine.flatten(0, 1), targets).backward()
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            layer = ours.get_submodule(name_map(name))
            assert (module.lora_A["default"].weight.grad - layer.lora_A.grad).abs().max() < 1e-6
            assert (module.lora_B["default"].weight.grad - layer.lora_B.grad).abs().max() < 1e-6
    assert trainable_parameters(ours).trainable == peft_model.get_nb_trainable_parameters()[0]


def test_merged_equals_unmerged_and_unmerge_restores_the_base():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, ["qkv", "out_proj", "linear1", "linear2"], r=4, alpha=8)
    for layer in lora_layers(model):
        nn.init.normal_(layer.lora_B, std=0.05)
    ids = torch.randint(0, 256, (2, 20))
    model.eval()
    with torch.no_grad():
        unmerged, _ = model(ids)
        assert merge_lora(model) == 2 * 4  # 2 layers, 4 projections each
        merged, _ = model(ids)
        layer = lora_layers(model)[0]
        assert torch.allclose(layer.base.weight, before["blocks.0.attn.qkv.weight"]
                              + layer.scaling * layer.lora_B @ layer.lora_A, atol=1e-7)  # fmt: skip
        unmerge_lora(model)
        again, _ = model(ids)
    assert (merged - unmerged).abs().max() < 1e-5
    assert torch.allclose(again, unmerged, atol=1e-6)
    restored = lora_layers(model)[0].base.weight
    assert torch.allclose(restored, before["blocks.0.attn.qkv.weight"], atol=1e-6)


def no_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = 0.0


def check_lora_applies_in_training(model, run, targets):
    """The LoRA branch runs in train mode exactly as in eval mode, once per call."""
    with torch.no_grad():
        base_out = run(model)
    apply_lora(model, targets, r=4, alpha=8)
    for layer in lora_layers(model):
        nn.init.normal_(layer.lora_B, std=0.05)
    calls = []
    for layer in lora_layers(model):
        layer.register_forward_hook(lambda *_: calls.append(1))
    no_dropout(model)
    model.train()
    train_out = run(model)
    n_train_calls = len(calls)
    model.eval()
    with torch.no_grad():
        eval_out = run(model)
    assert n_train_calls == len(calls) // 2 == len(lora_layers(model))
    assert (train_out - base_out).abs().max() > 1e-3  # the update is applied in training
    assert (train_out - eval_out).abs().max() < 1e-5
    train_out.square().mean().backward()
    assert all(layer.lora_B.grad is not None and layer.lora_B.grad.abs().sum() > 0
               for layer in lora_layers(model))  # fmt: skip


def test_lora_applies_in_training_on_minilm():
    from llmbook_utils.hf import load_pretrained

    tokenizer, hf = load_pretrained("minilm")
    model = bert_from_hf(hf)
    batch = tokenizer(["LoRA in training mode", "and in evaluation mode"], padding=True,
                      return_tensors="pt")  # fmt: skip

    def run(m):
        return m.encode(batch["input_ids"], attention_mask=batch["attention_mask"])[0]

    check_lora_applies_in_training(model, run, ["q_proj", "k_proj", "v_proj", "out_proj"])


def test_lora_applies_in_training_on_gpt():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", dropout=0.1))
    ids = torch.randint(0, 256, (2, 16))
    check_lora_applies_in_training(model, lambda m: m(ids)[0], ["qkv", "out_proj"])


def test_apply_lora_names_the_available_modules_on_a_typo():
    model = GPT(GPTConfig.from_name("tiny"))
    with pytest.raises(ValueError, match="qkv"):
        apply_lora(model, ["c_attn"], r=4, alpha=8)
    with pytest.raises(ValueError, match="r=100"):
        LoRALinear(nn.Linear(16, 16), r=100, alpha=8)


# --------------------------------------------------------------------------------------------
# Adapters, BitFit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("placement, per_layer", [("houlsby", 2), ("pfeiffer", 1)])
def test_adapters_start_as_identity_and_count_2mC_plus_m_plus_C(placement, per_layer):
    hf = tiny_hf_bert()
    model = bert_from_hf(hf)
    ids = torch.randint(1, 99, (2, 9))
    with torch.no_grad():
        before = model.encode(ids)[0]
        names = add_adapters(model, bottleneck=8, placement=placement)
        after = model.encode(ids)[0]
    assert len(names) == per_layer * 2
    assert torch.equal(before, after)
    C, m = 32, 8
    assert trainable_parameters(model).trainable == per_layer * 2 * (2 * m * C + m + C)


def test_bitfit_trains_exactly_the_biases():
    model = bert_from_hf(tiny_hf_bert())
    count = bitfit(model)
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    assert count.trainable == biases and 0 < count.share < 0.1


# --------------------------------------------------------------------------------------------
# Prompt tuning and prefix tuning
# --------------------------------------------------------------------------------------------


def test_prompt_tuning_equals_bert_with_prompt_inputs_embeds():
    hf = tiny_hf_bert()
    model = bert_from_hf(hf)
    n = 5
    prompt = apply_prompt_tuning(model, n_virtual=n, init_ids=torch.arange(10, 10 + n))
    with torch.no_grad():
        prompt.prompt.add_(torch.randn(prompt.prompt.shape) * 0.1)
    ids = torch.randint(1, 99, (3, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    ext_ids, ext_mask = PromptTuning.extend(ids, mask, n)
    mine = model.encode(ext_ids, attention_mask=ext_mask)[0]
    # reference: transformers with the soft prompt in front of the word embeddings
    embeds = torch.cat([prompt.prompt.expand(3, -1, -1), hf.embeddings.word_embeddings(ids)], 1)
    theirs = hf(inputs_embeds=embeds, attention_mask=ext_mask).last_hidden_state
    real = ext_mask.bool()
    assert (mine - theirs)[real].abs().max() < 1e-5
    mine[real].sum().backward()
    assert prompt.prompt.grad is not None and trainable_parameters(model).trainable == n * 32


def test_one_position_prefix_equals_multihead_attention_add_bias_kv():
    from llmbook_utils.attention import MultiHeadAttention

    torch.manual_seed(0)
    C, H = 16, 4
    ref = nn.MultiheadAttention(C, H, add_bias_kv=True, batch_first=True).eval()
    mha = MultiHeadAttention(C, H)
    with torch.no_grad():
        projections = (mha.q_proj, mha.k_proj, mha.v_proj)
        weights, biases = ref.in_proj_weight.chunk(3), ref.in_proj_bias.chunk(3)
        for proj, w, b in zip(projections, weights, biases, strict=True):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        mha.out_proj.load_state_dict(ref.out_proj.state_dict())
    prefixed = PrefixTuning(mha, n_prefix=1)
    with torch.no_grad():  # add_bias_kv appends one projected key and value, shared by heads
        prefixed.prefix_keys.copy_(ref.bias_k.view(H, 1, C // H))
        prefixed.prefix_values.copy_(ref.bias_v.view(H, 1, C // H))
    x = torch.randn(2, 7, C)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[0, 4:] = False
    theirs, _ = ref(x, x, x, key_padding_mask=~keep)  # True = ignore, in nn.MultiheadAttention
    mine, _ = prefixed(x, mask=keep[:, None, None, :])
    assert (theirs - mine).abs().max() < 1e-6


def test_prefix_tuning_on_gpt_equals_gpt2_with_past_key_values():
    from transformers import DynamicCache

    hf = tiny_hf_gpt2()
    model = gpt_from_hf(hf)
    P, H, D = 3, 4, 8
    names = apply_prefix_tuning(model, n_prefix=P, attention="attn")
    assert names == ["blocks.0.attn", "blocks.1.attn"]
    torch.manual_seed(1)
    cache = DynamicCache()
    with torch.no_grad():
        for i, name in enumerate(names):
            layer = model.get_submodule(name)
            layer.prefix_keys.copy_(torch.randn(H, P, D))
            layer.prefix_values.copy_(torch.randn(H, P, D))
            cache.update(layer.prefix_keys[None].clone(), layer.prefix_values[None].clone(), i)
    ids = torch.randint(0, 97, (1, 10))
    mine, _ = model(ids)
    # reference: GPT-2 attending to the prefix as cached past keys/values; the tokens keep
    # positions 0..T-1 (position_ids), as in our prefix tuning of GPT
    mask = torch.ones(1, P + 10, dtype=torch.long)
    theirs = hf(input_ids=ids, past_key_values=cache, attention_mask=mask,
                position_ids=torch.arange(10)[None]).logits  # fmt: skip
    assert (mine - theirs).abs().max() < 1e-5
    assert trainable_parameters(model).trainable == 2 * 2 * H * P * D
