"""The warmup-stable-decay (WSD) learning-rate schedule.

The paper's recipe (DESIGN.md §1) holds the learning rate constant after a warm-up and
decays it linearly to 0 over the last 25% of training. WSD (Hu et al., 2024,
"MiniCPM"; Hägele et al., 2024) is that shape with three knobs: the warm-up length,
the decay length and the decay curve.

Step convention: Keras evaluates a schedule at `optimizer.iterations`, the number of
updates already applied, so `step = s` is the rate of update `s + 1`. Warm-up is
linear and reaches the peak at `step = warmup_steps - 1`, so even the very first
update moves the weights; the decay starts at `step = total_steps - decay_steps` and
reaches the final rate at `step = total_steps` (after the last update).
"""

import math

import keras
from keras import ops

from keras_dualobj.utils.validation import check_choice
from keras_dualobj.utils.validation import check_float
from keras_dualobj.utils.validation import check_int

DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


def warmup_stable_decay(
    step,
    peak_learning_rate,
    total_steps,
    warmup_steps,
    decay_steps,
    decay_shape="linear",
    final_learning_rate=0.0,
):
    """The WSD learning rate at `step` (a pure function of tensors).

    With `p = clip((step - (total_steps - decay_steps)) / decay_steps, 0, 1)` the
    decay progress and `f(p)` the decay curve (`1 - p` for `"linear"`,
    `(1 + cos(pi p)) / 2` for `"cosine"`, `1 - sqrt(p)` for `"1-sqrt"`):

    `lr = min(1, (step + 1) / warmup_steps) * (final + (peak - final) * f(p))`.

    Args:
        step: int or scalar tensor, updates already applied.
        peak_learning_rate: float, the plateau value.
        total_steps: int, updates in the whole run.
        warmup_steps: int >= 0, linear warm-up length (0: none).
        decay_steps: int >= 0, decay length at the end (0: none).
        decay_shape: one of `"linear"`, `"cosine"`, `"1-sqrt"`.
        final_learning_rate: float, the value reached at `step = total_steps`.

    Returns:
        float32 scalar tensor.

    Example:
    >>> from keras import ops
    >>> lr = lambda s: round(float(ops.convert_to_numpy(warmup_stable_decay(
    ...     s, 1.0, total_steps=100, warmup_steps=10, decay_steps=20))), 6)
    >>> lr(0), lr(9), lr(50), lr(90), lr(100)
    (0.1, 1.0, 1.0, 0.5, 0.0)
    """
    step = ops.cast(step, "float32")
    warmup = 1.0
    if warmup_steps > 0:
        warmup = ops.minimum(1.0, (step + 1.0) / float(warmup_steps))
    progress = 0.0
    if decay_steps > 0:
        decay_start = float(total_steps - decay_steps)
        progress = ops.clip((step - decay_start) / float(decay_steps), 0.0, 1.0)
    if decay_shape == "linear":
        remaining = 1.0 - progress
    elif decay_shape == "cosine":
        remaining = 0.5 * (1.0 + ops.cos(math.pi * progress))
    else:
        remaining = 1.0 - ops.sqrt(progress)
    rate = final_learning_rate + (peak_learning_rate - final_learning_rate) * remaining
    return ops.cast(warmup * rate, "float32")


@keras.saving.register_keras_serializable(package="keras_dualobj")
class WarmupStableDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, a constant plateau, then a decay to `final_learning_rate`.

    The lengths are fractions of `total_steps` (rounded to whole steps), so one
    configuration serves runs of any length; the paper's recipe is
    `decay_fraction=0.25, decay_shape="linear", final_learning_rate=0`.
    See `warmup_stable_decay` for the formula and the step convention.

    Args:
        peak_learning_rate: float > 0. Rate on the plateau.
        total_steps: int >= 1. Updates in the whole run.
        warmup_fraction: float in [0, 1]. Share of the steps spent warming up.
            Defaults to `0.01` (the paper does not state its warm-up length).
        decay_fraction: float in [0, 1]. Share of the steps spent decaying.
            Defaults to `0.25` (the paper's).
        decay_shape: `"linear"` (the paper's), `"cosine"` or `"1-sqrt"`
            (Hägele et al., 2024).
        final_learning_rate: float >= 0. Rate reached at the end. Defaults to `0`.

    Example:
    >>> schedule = WarmupStableDecay(7e-3, total_steps=1000)
    >>> schedule.warmup_steps, schedule.decay_steps
    (10, 250)
    >>> round(float(schedule(500)), 6), float(schedule(1000))
    (0.007, 0.0)
    >>> WarmupStableDecay.from_config(schedule.get_config()).decay_steps
    250
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_fraction=0.01,
        decay_fraction=0.25,
        decay_shape="linear",
        final_learning_rate=0.0,
    ):
        check_float("peak_learning_rate", peak_learning_rate, minimum=0.0)
        if peak_learning_rate <= 0:
            raise ValueError(
                "`peak_learning_rate` must be > 0; received "
                f"peak_learning_rate={peak_learning_rate!r}."
            )
        check_int("total_steps", total_steps, minimum=1)
        check_float("warmup_fraction", warmup_fraction, minimum=0.0, maximum=1.0)
        check_float("decay_fraction", decay_fraction, minimum=0.0, maximum=1.0)
        check_choice("decay_shape", decay_shape, DECAY_SHAPES)
        check_float(
            "final_learning_rate", final_learning_rate, minimum=0.0, maximum=peak_learning_rate
        )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.decay_fraction = float(decay_fraction)
        self.decay_shape = decay_shape
        self.final_learning_rate = float(final_learning_rate)
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(
                "Warm-up and decay overlap: warmup_fraction + decay_fraction must be "
                f"<= 1; received warmup_fraction={warmup_fraction}, "
                f"decay_fraction={decay_fraction} ({self.warmup_steps} + "
                f"{self.decay_steps} steps > total_steps={total_steps})."
            )

    @property
    def warmup_steps(self):
        return int(round(self.warmup_fraction * self.total_steps))

    @property
    def decay_steps(self):
        return int(round(self.decay_fraction * self.total_steps))

    def __call__(self, step):
        return warmup_stable_decay(
            step,
            self.peak_learning_rate,
            self.total_steps,
            self.warmup_steps,
            self.decay_steps,
            decay_shape=self.decay_shape,
            final_learning_rate=self.final_learning_rate,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "decay_fraction": self.decay_fraction,
            "decay_shape": self.decay_shape,
            "final_learning_rate": self.final_learning_rate,
        }
