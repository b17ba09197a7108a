"""Gradient descent for t-SNE: momentum with per-coordinate gains or AdaGrad.

The step follows the convention of bhtsne, Deeplearning4j, openTSNE and FIt-SNE:
the optimiser moves along ``gradient / 4`` (the KL gradient without its constant
factor 4), so the learning rates those tools use, and Belkina et al. (2019)'s
``learning_rate = N / early_exaggeration``, mean the same thing here.

Two update rules:

* gains (delta-bar-delta; Jacobs 1988, as in bhtsne): a coordinate's gain grows by
  0.2 while the sign of its gradient differs from the sign of its last update (the
  descent keeps going the same way) and shrinks by a factor 0.8 otherwise, never
  below ``min_gain``;
* AdaGrad (Duchi et al. 2011), Deeplearning4j's ``useAdaGrad``: the step is scaled
  by the root of the accumulated squared gradients.

Both keep a momentum term (``momentum`` before ``switch_momentum_iter``,
``final_momentum`` from then on; the switch is the estimator's business).
"""

import numpy as np

_ADAGRAD_EPS = 1e-8


class GradientDescent:
    """In-place optimiser state for an embedding of shape (N, d).

    Parameters
    ----------
    shape : tuple of int
        Shape of the embedding.
    learning_rate : float
        Step size, in the convention described in the module docstring.
    use_adagrad : bool, default=False
        AdaGrad scaling instead of delta-bar-delta gains.
    min_gain : float, default=0.01
        Lower bound of the gains.

    Examples
    --------
    >>> opt = GradientDescent((3, 2), learning_rate=100.0)
    >>> Y = np.zeros((3, 2))
    >>> moved = opt.step(Y, np.ones((3, 2)), momentum=0.5)
    >>> moved is Y, bool((Y < 0).all())
    (True, True)
    """

    def __init__(self, shape, learning_rate, use_adagrad=False, min_gain=0.01):
        self.learning_rate = float(learning_rate)
        self.use_adagrad = use_adagrad
        self.min_gain = float(min_gain)
        self.update = np.zeros(shape)
        # gains for delta-bar-delta, accumulated squared gradients for AdaGrad
        self.scale = np.zeros(shape) if use_adagrad else np.ones(shape)

    def step(self, Y: np.ndarray, grad: np.ndarray, momentum: float) -> np.ndarray:
        """Move ``Y`` (in place) one step against ``grad``, the true KL gradient;
        returns ``Y``."""
        g = grad * 0.25
        if self.use_adagrad:
            self.scale += g * g
            step = g / (np.sqrt(self.scale) + _ADAGRAD_EPS)
        else:
            keeps_going = np.sign(g) != np.sign(self.update)
            self.scale = np.where(keeps_going, self.scale + 0.2, self.scale * 0.8)
            np.maximum(self.scale, self.min_gain, out=self.scale)
            step = self.scale * g
        self.update *= momentum
        self.update -= self.learning_rate * step
        Y += self.update
        return Y
