"""The update rules of :class:`embedviz.tsne.optimizer.GradientDescent` against sequences
worked out by hand (review 10, finding 2): delta-bar-delta gains and their floor
``min_gain``, momentum, AdaGrad. The optimiser steps along ``grad / 4``, so the
gradients below are 4 times the ``g`` of the derivations."""

import numpy as np
import pytest

from embedviz.tsne.optimizer import GradientDescent


def test_gains_grow_by_a_fifth_while_the_gradient_keeps_its_sign():
    # every coordinate has its own constant gradient g (nonzero, either sign); lr 4,
    # momentum 0.5. Its sign always differs from the last update's (the first update
    # is 0, whose sign 0 differs too), so after k steps the gain is 1 + 0.2 k and
    #   u1 = -4 (1.2 g)                = -4.8 g
    #   u2 = 0.5 u1 - 4 (1.4 g)        = -2.4 g - 5.6 g  = -8.0 g
    #   u3 = 0.5 u2 - 4 (1.6 g)        = -4.0 g - 6.4 g  = -10.4 g
    #   u4 = 0.5 u3 - 4 (1.8 g)        = -5.2 g - 7.2 g  = -12.4 g
    # and y_k = u1 + ... + uk = -4.8 g, -12.8 g, -23.2 g, -35.6 g.
    g = np.array([[1.0, -2.0, 0.5], [-0.25, 3.0, -1.0]])
    Y = np.full(g.shape, 7.0)
    opt = GradientDescent(g.shape, learning_rate=4.0)
    for k, (update, y) in enumerate(
        [(-4.8, -4.8), (-8.0, -12.8), (-10.4, -23.2), (-12.4, -35.6)], start=1
    ):
        moved = opt.step(Y, 4.0 * g, momentum=0.5)
        assert moved is Y
        np.testing.assert_allclose(opt.scale, 1.0 + 0.2 * k, rtol=1e-14)
        np.testing.assert_allclose(opt.update, update * g, rtol=1e-14)
        np.testing.assert_allclose(Y, 7.0 + y * g, rtol=1e-14)


def test_gains_shrink_by_a_fifth_against_the_update_and_stop_at_min_gain():
    # momentum 0, so each update has the sign of -g. Column 0: the gradient flips
    # sign every step, so from the second step on it has the sign of the last update:
    # gains 1.2, 1.2 * 0.8 = 0.96, 0.768, 0.6144, then 0.49152 is floored to
    # min_gain = 0.5, and 0.5 * 0.8 again to 0.5. Column 1: a constant gradient, its
    # gain grows meanwhile (1.2, 1.4, ...): the rule is per coordinate.
    opt = GradientDescent((1, 2), learning_rate=10.0, min_gain=0.5)
    Y = np.zeros((1, 2))
    flipping = [1.2, 0.96, 0.768, 0.6144, 0.5, 0.5, 0.5]
    y = np.zeros(2)
    for k, gain in enumerate(flipping, start=1):
        g = np.array([[(-1.0) ** (k + 1) * 0.5, 2.0]])
        opt.step(Y, 4.0 * g, momentum=0.0)
        np.testing.assert_allclose(opt.scale, [[gain, 1.0 + 0.2 * k]], rtol=1e-14)
        np.testing.assert_allclose(opt.update, -10.0 * opt.scale * g, rtol=1e-14)
        y += opt.update[0]
        np.testing.assert_allclose(Y[0], y, rtol=1e-14)


def test_default_min_gain_is_one_hundredth():
    # 1.2 * 0.8 ** (k - 1) falls below 0.01 at k = 23 (0.0110 at k = 22, 0.0088 at 23)
    opt = GradientDescent((1, 1), learning_rate=1.0)
    Y = np.zeros((1, 1))
    gains = []
    for k in range(1, 31):
        opt.step(Y, np.array([[(-1.0) ** k]]), momentum=0.0)
        gains.append(float(opt.scale[0, 0]))
    assert gains[21] == pytest.approx(1.2 * 0.8**21, rel=1e-12)
    assert gains[22:] == [0.01] * 8


def test_adagrad_step_is_the_gradient_over_the_root_of_its_squared_sum():
    # lr 2, momentum 0.5; per coordinate the steps are g_k / sqrt(g_1^2 + ... + g_k^2):
    #   g = (3, 4):       steps 3/3 = 1, 4/5 = 0.8;     u = -2, 0.5 (-2) - 1.6 = -2.6
    #   g = (-1, 0):      steps -1, 0;                  u = 2, 1
    #   g = (0.5, -0.5):  steps 1, -0.5/sqrt(0.5);      u = -2, -1 + sqrt(2)
    # (up to the 1e-8 added to the root)
    grads = [np.array([[3.0, -1.0, 0.5]]), np.array([[4.0, 0.0, -0.5]])]
    root2 = np.sqrt(2.0)
    expected = [  # (update, y) after each step
        (np.array([[-2.0, 2.0, -2.0]]), np.array([[-2.0, 2.0, -2.0]])),
        (np.array([[-2.6, 1.0, -1.0 + root2]]), np.array([[-4.6, 3.0, -3.0 + root2]])),
    ]
    opt = GradientDescent((1, 3), learning_rate=2.0, use_adagrad=True, min_gain=0.9)
    Y = np.zeros((1, 3))
    for g, (update, y) in zip(grads, expected, strict=True):
        opt.step(Y, 4.0 * g, momentum=0.5)
        np.testing.assert_allclose(opt.update, update, rtol=1e-7)
        np.testing.assert_allclose(Y, y, rtol=1e-7)
    np.testing.assert_allclose(opt.scale, [[25.0, 1.0, 0.5]], rtol=1e-14)  # sum of g^2
