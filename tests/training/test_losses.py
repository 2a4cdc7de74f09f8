import math

import pytest
import torch

from training.losses import (LossWeights, LPIPSLoss, PerceptualContrastiveLoss, SAPNetLoss, ssim)


@pytest.fixture(scope="module")
def criterion() -> SAPNetLoss:
    """Every term on, with seeded random loss networks (no ImageNet download in tests)."""
    return SAPNetLoss(LossWeights(), pretrained=False)


def _batch(seed=0, size=48):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, size, size, generator=g) * 0.8
    rainy = (target + 0.3 * (torch.rand(2, 3, size, size, generator=g) > 0.9)).clamp(0, 1)
    output = (target + 0.05 * torch.randn(2, 3, size, size, generator=g)).requires_grad_(True)
    return output, target, rainy


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    noisy = [ssim(x, (x + s * torch.randn_like(x)).clamp(0, 1)).item() for s in (0.02, 0.1, 0.3)]
    assert noisy[0] > noisy[1] > noisy[2]


@pytest.mark.parametrize("term", ["ssim", "pcl", "lpips", "seg", "l1"])
def test_each_term_is_finite_and_has_a_gradient_with_respect_to_the_output(criterion, term):
    output, target, rainy = _batch()
    weights = {name: 0.0 for name in LossWeights().as_dict()}
    weights[term] = 1.0
    total, terms = _only(criterion, LossWeights(**weights))(output, target, rainy, epoch=60)
    assert list(terms) == [term] and math.isfinite(terms[term])
    total.backward()
    grad = output.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def _only(criterion: SAPNetLoss, weights: LossWeights) -> SAPNetLoss:
    """The module-scoped criterion with other weights (its loss networks are reused, not rebuilt)."""
    view = SAPNetLoss.__new__(SAPNetLoss)
    torch.nn.Module.__init__(view)
    view.weights, view.seg_after_epoch = weights, criterion.seg_after_epoch
    view.pcl, view.lpips, view.seg = criterion.pcl, criterion.lpips, criterion.seg
    return view


def test_lpips_has_a_real_gradient_unlike_the_official_float_wrapper():
    # The official LpisLoss rebuilds a tensor from float(distance): no graph, so nothing trains.
    loss = LPIPSLoss(pretrained=False)
    output, target, _ = _batch(1, 64)
    value = loss(output, target)
    value.backward()
    assert value.requires_grad and output.grad.abs().sum() > 0
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_perceptual_contrastive_loss_prefers_outputs_near_the_clean_image():
    pcl = PerceptualContrastiveLoss(pretrained=False)
    _, target, rainy = _batch(2, 48)
    near_clean = pcl(target + 0.01, target, rainy)
    near_rainy = pcl(rainy + 0.01, target, rainy)
    assert near_clean < near_rainy


def test_the_segmentation_term_starts_after_epoch_50_as_in_the_official_code(criterion):
    assert "seg" not in criterion.active_terms(50)
    assert "seg" in criterion.active_terms(51)
    output, target, rainy = _batch()
    _, terms = criterion(output, target, rainy, epoch=0)
    assert set(terms) == {"ssim", "pcl", "lpips"}


def test_switched_off_terms_build_no_network_and_all_zero_is_refused():
    only_ssim = SAPNetLoss(LossWeights(ssim=1, seg=0, pcl=0, lpips=0), pretrained=False)
    assert only_ssim.pcl is None and only_ssim.lpips is None and only_ssim.seg is None
    with pytest.raises(ValueError, match="not all 0"):
        SAPNetLoss(LossWeights(0, 0, 0, 0, 0), pretrained=False)
    with pytest.raises(ValueError, match=">= 0"):
        SAPNetLoss(LossWeights(ssim=-1), pretrained=False)


def test_the_total_is_the_weighted_sum_of_eq_5(criterion):
    output, target, rainy = _batch(3)
    total, terms = criterion(output, target, rainy, epoch=60)
    assert "l1" not in terms  # not in the paper: off unless asked for
    expected = terms["ssim"] + 0.1 * (terms["seg"] + terms["pcl"] + terms["lpips"])
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_the_pixel_l1_term_sees_a_brightness_offset_that_ssim_barely_does():
    target = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(4)) * 0.5 + 0.4
    darker = target - 0.06
    only_l1 = SAPNetLoss(LossWeights(ssim=0, seg=0, pcl=0, lpips=0, l1=1), pretrained=False)
    _, terms = only_l1(darker, target, target, epoch=0)
    assert terms["l1"] == pytest.approx(0.06, abs=1e-6)
    assert 1 - ssim(darker, target).item() < 0.02  # a 15-level shift costs SSIM almost nothing
