"""Tests of roots_course.representation.worked_example: the source's §4.2 numbers and the corrected computation."""

from __future__ import annotations

import pytest
import torch

from roots_course.representation import worked_example as wx
from roots_course.core.attention import scaled_dot_product_attention
from roots_course.errors import DataError

f64 = torch.float64


def test_the_example_data():
    assert wx.WORDS == ("The", "cat", "sat", "on", "the", "mat")
    assert wx.VECTORS.shape == (6, 3)
    torch.testing.assert_close(wx.vector("mat"), torch.tensor([0.5, 0.6, 0.7], dtype=f64))
    assert "sat" not in wx.CLAIMED_SCORES
    with pytest.raises(DataError):
        wx.vector("dog")


def test_the_stated_sum_is_wrong_and_the_weights_do_not_average():
    torch.testing.assert_close(wx.claimed_weighted_sum(), torch.tensor([0.49, 0.65, 0.81], dtype=f64))
    assert not torch.allclose(wx.claimed_weighted_sum(), wx.CLAIMED_CONTEXT, atol=0.1)
    assert wx.claimed_weight_total() == pytest.approx(1.6)
    torch.testing.assert_close(wx.claimed_normalised(), torch.tensor([0.30625, 0.40625, 0.50625], dtype=f64))


def test_no_average_of_the_vectors_gives_the_stated_result():
    assert wx.implied_weight_total(wx.CLAIMED_CONTEXT) == pytest.approx(0.9)
    assert wx.implied_weight_total(wx.claimed_weighted_sum()) == pytest.approx(1.6)
    # any weights w: the sum climbs by 0.1 * sum(w)
    w = torch.tensor([0.3, 0.1, 0.05, 0.2, 0.15, 0.2], dtype=f64)
    assert wx.implied_weight_total(w @ wx.VECTORS) == pytest.approx(float(w.sum()))
    with pytest.raises(DataError, match="unequal steps"):
        wx.implied_weight_total(torch.tensor([0.1, 0.3, 0.4], dtype=f64))


def test_stated_scores_are_not_dot_products():
    dots = wx.dot_product_scores("sat")
    assert dots["sat"] == pytest.approx(1.94) and dots["cat"] == pytest.approx(1.22)
    assert dots["on"] == pytest.approx(0.74) and dots["The"] == dots["the"] == pytest.approx(0.5)
    assert wx.dot_product_scores("sat", scale=True)["mat"] == pytest.approx(1.46 / 3**0.5)
    assert wx.ranking(wx.CLAIMED_SCORES) == ["mat", "on", "cat", "The", "the"]
    assert [w for w in wx.ranking(dots) if w != "sat"] == ["mat", "cat", "on", "The", "the"]


def test_corrected_attention_is_a_softmax_average_including_itself():
    right = wx.attention_for("sat")
    assert float(right.weights.sum()) == pytest.approx(1.0)
    expected = torch.softmax(wx.VECTORS @ wx.vector("sat") / 3**0.5, dim=0)
    torch.testing.assert_close(right.weights, expected)
    torch.testing.assert_close(right.context, expected @ wx.VECTORS)
    torch.testing.assert_close(right.context, torch.tensor([0.4038, 0.5038, 0.6038], dtype=f64), atol=1e-4, rtol=0)
    assert wx.ranking(dict(zip(wx.WORDS, right.weights.tolist())))[0] == "sat"
    full = scaled_dot_product_attention(wx.VECTORS, wx.VECTORS, wx.VECTORS, causal=False)
    torch.testing.assert_close(right.steps.output, full)
    assert len(right.table()) == 6 and right.table()[2]["word"] == "sat"


def test_projections_change_the_weights_but_only_along_the_offsets():
    w_q, w_k, w_v = wx.random_projections(seed=3)
    assert w_q.shape == (3, 3) and not torch.equal(w_q, w_k)
    projected = wx.attention_for("sat", w_q, w_k, w_v)
    assert not torch.allclose(projected.weights, wx.attention_for("sat").weights)
    torch.testing.assert_close(projected.context, projected.weights @ (wx.VECTORS @ w_v))
    for seed in range(10):
        for word in wx.WORDS:
            assert wx.ordered_like_offsets(wx.attention_for(word, *wx.random_projections(seed=seed)).weights)
    assert not wx.ordered_like_offsets(torch.tensor([0.1, 0.3, 0.1, 0.2, 0.1, 0.2], dtype=f64))
