"""Distillation loss against torch.nn.functional.kl_div and cross_entropy; the bag-of-embeddings
student against a hand-written masked mean."""

import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.distill import BagOfEmbeddingsClassifier, distillation_loss


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 5.0])
def test_soft_term_equals_torch_kl_div_times_tau_squared(temperature):
    torch.manual_seed(0)
    student, teacher = torch.randn(16, 5), 3 * torch.randn(16, 5)
    ours = distillation_loss(student, teacher, temperature=temperature)
    reference = (
        F.kl_div(
            F.log_softmax(student / temperature, dim=-1),
            F.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )
    torch.testing.assert_close(ours, reference)


def test_mixed_loss_adds_weighted_cross_entropy():
    torch.manual_seed(1)
    student, teacher = torch.randn(8, 3), torch.randn(8, 3)
    labels = torch.randint(0, 3, (8,))
    ours = distillation_loss(student, teacher, temperature=2.0, alpha=0.3, labels=labels)
    kl = F.kl_div(F.log_softmax(student / 2, -1), F.softmax(teacher / 2, -1), reduction="batchmean")
    reference = 0.3 * 4 * kl + 0.7 * F.cross_entropy(student, labels)
    torch.testing.assert_close(ours, reference)


def test_gradient_is_softmax_difference_over_tau():
    # Hinton et al. (2015), eq. 2: dL/dz_s = tau (p_s - p_t) for the tau^2-scaled KL, per row
    # (divided by the batch size because of the batch mean).
    torch.manual_seed(2)
    student = torch.randn(4, 6, requires_grad=True)
    teacher = torch.randn(4, 6)
    tau = 3.0
    distillation_loss(student, teacher, temperature=tau).backward()
    expected = tau * (F.softmax(student / tau, -1) - F.softmax(teacher / tau, -1)) / 4
    torch.testing.assert_close(student.grad, expected.detach())


def test_no_gradient_reaches_the_teacher():
    teacher = torch.randn(2, 3, requires_grad=True)
    distillation_loss(torch.randn(2, 3, requires_grad=True), teacher).backward()
    assert teacher.grad is None


def test_bad_inputs_name_the_values():
    with pytest.raises(ValueError, match="temperature=0"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="labels are required"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), alpha=0.5)
    with pytest.raises(ValueError, match="num_labels=1"):
        BagOfEmbeddingsClassifier(10, 4, 1)


def test_student_is_masked_mean_then_linear():
    torch.manual_seed(3)
    model = BagOfEmbeddingsClassifier(vocab_size=20, embed_dim=4, num_labels=3, pad_id=0)
    ids = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 9]])
    mask = (ids != 0).long()
    rows = [model.embed.weight[ids[b, mask[b].bool()]].mean(0) for b in range(2)]
    reference = torch.stack(rows) @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(ids, mask), reference)
    torch.testing.assert_close(model(ids), reference)  # the mask defaults to ids != pad_id
    assert model.num_parameters() == 20 * 4 + 4 * 3 + 3
