"""Every threshold the doctor uses, in one place, each with its reason and source.

Override any of them per call::

    from impediments.doctor import Thresholds, diagnose
    report = diagnose(stats, Thresholds(dead_error=0.5))
    report = diagnose(stats, {"dead_error": 0.5})        # a dict works too

``Thresholds.describe()`` lists them with their reasons (the docs table).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def _t(default, reason: str):
    return field(default=default, metadata={"reason": reason})


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds of the doctor's rules (all user-overridable)."""

    # -- dead units --------------------------------------------------------------------------------
    dead_min_values: int = _t(32, "a unit must have seen at least this many values before 'never active' "
                                  "means anything (P(inactive) = 2^-32 for a healthy ReLU unit)")
    nearly_dead_fraction: float = _t(1e-3, "a unit active on at most 0.1% of the values it saw gets (almost) no "
                                           "gradient either: counted as dead (reported separately as nearly dead)")
    dead_warning: float = _t(0.25, "a quarter of a layer's units never active: a quarter of its capacity is gone")
    dead_error: float = _t(0.7, "AUTOTRAINER's dying-ReLU ratio gamma = 0.7 (Zhang et al. 2021)")
    trains_loss_drop: float = _t(0.25, "a loss that shed a quarter of its first value over the run (last third of "
                                       "the windows against step 0) is learning: a property of the network (dead "
                                       "units below dead_error, uncentered inputs, activations shrinking with "
                                       "depth, hidden layers in their linear regime) is then info, its cost not "
                                       "shown. The real-bug corpus's fixed "
                                       "versions shed 47-99%; the module's dead-bias case and a loss stuck at ln C "
                                       "shed under 2%")
    dead_false_alarm: float = _t(0.01, "units are called dead only when healthy units as active as their live "
                                       "siblings would all be this silent by chance with probability below 1% "
                                       "(a unit active 5% of the time is silent over 48 examples 8% of the time); "
                                       "otherwise 'not enough data yet'")
    dead_layer_rate: float = _t(0.02, "a rectifier layer active on under 2% of all its values is dead as a whole: "
                                      "symmetric pre-activations make a healthy ReLU layer active on about half "
                                      "(measured 0.35-0.51 in a He-init digits MLP), so 2% is 25x below it. The "
                                      "module's dead-bias case (first-layer bias -4/-10, second -5/-10, -2 on "
                                      "every layer, third -10) puts the silenced layers at 0.001-0.013, loss "
                                      "flat at ln 10; there the sibling test fails (siblings fire 1-5 times in "
                                      "480 examples, so silence looks like chance) and this rate decides")
    # -- saturation / linear regime ------------------------------------------------------------------
    saturated_warning: float = _t(0.5, "most inputs (over half) in the zero-derivative region")
    saturated_error: float = _t(0.9, "nearly all inputs saturated: the layer passes almost no gradient")
    linear_warning: float = _t(0.98, "nearly all inputs within the near-linear region: the nonlinearity is unused "
                                     "(Glorot & Bengio 2010, small-init regime)")
    transient_steps: int = _t(12, "the first dozen steps are a transient (momentum 0.9 and Adam's beta1 average "
                                  "over 1/(1 - 0.9) = 10 steps; BN running statistics and warm-up settle): no "
                                  "verdict on the loss trend or on a regime that may be left is drawn from them")
    # -- activation / gradient variance with depth ---------------------------------------------------
    depth_min_layers: int = _t(3, "a geometric trend needs at least three layers")
    activation_var_ratio: float = _t(100.0, "last/first pre-activation variance outside [1/r, r], r = 100 "
                                           "(two orders of magnitude) along a geometric trend")
    gradient_var_ratio: float = _t(1000.0, "last/first hidden layer back-propagated gradient energy outside [1/r, r], "
                                          "r = 1000: one learning rate cannot suit layers three orders apart")
    vanishing_grad_norm: float = _t(1e-7, "every parameter gradient norm below this: training has effectively stopped")
    through_time_floor: float = _t(1.4e-14, "gradient energy through time below float32 resolution squared "
                                            "(eps = 1.19e-7) of the nearest step's: a contribution that small is "
                                            "lost when added to it, so dependencies that long cannot be learned")
    exploding_update_ratio: float = _t(1.0, "an update as large as the weight itself (Karpathy's healthy "
                                            "||dw||/||w|| is about 1e-3)")
    exploding_grad_norm: float = _t(1e4, "a gradient norm this large overflows any sensible learning rate")
    cause_update_ratio: float = _t(0.1, "updates a tenth of the weight per step (100x Karpathy's healthy 1e-3): "
                                        "units pushed this hard die, saturate or blow up within a few steps, so "
                                        "the learning rate is named as the cause of those findings")
    # -- inputs --------------------------------------------------------------------------------------
    input_min_count: int = _t(64, "input statistics need at least this many examples")
    uncentered_energy: float = _t(0.5, "the mean carries at least half the inputs' second moment, "
                                       "||mu||^2 / (||mu||^2 + tr Sigma) >= 0.5: E[x x^T] then has an eigenvalue "
                                       ">= ||mu||^2 along the mean that dominates the curvature (LeCun et al. 1998)")
    uncentered_sign_share: float = _t(0.9, "at least 90% of the mean's energy in features of one sign: their "
                                           "weight updates share a sign (the zig-zag)")
    same_sign_rows: float = _t(0.4, "the first weight matrix's gradient rows agree in sign on average at 0.4 or "
                                    "more (|sum sign g| / nonzero entries; 1 = every entry of a row the same "
                                    "sign): measured on digits in a ReLU MLP, 0.20 standardized, 0.48 scaled to "
                                    "[0, 1], 0.54 raw; n random signs give sqrt(2 / (pi n)) = 0.11 for n = 50")
    near_constant_share: float = _t(0.01, "a feature with Var / range^2 below 1% departs from one level on under 1% "
                                          "of the examples (a two-level feature has Var = f (1 - f) range^2): "
                                          "near-constant, it carries no signal, and its scale is not compared "
                                          "(a Gaussian feature's range would have to reach 10 std)")
    input_var_ratio: float = _t(1000.0, "max/min feature variance above 1e3: the curvature along inputs differs by "
                                        "three orders of magnitude (LeCun et al. 1998: equalize covariances)")
    # -- BatchNorm -----------------------------------------------------------------------------------
    bn_min_values: int = _t(32, "Wu & He 2018: BN error rises quickly below batch 32 (23.6% -> 34.7% at batch 2)")
    bn_min_examples: int = _t(16, "counted in examples (a batch): Wu & He 2018's ResNet-50 BN error is 23.6% at "
                                  "batch 32, 23.7% at 16, 24.8% at 8, 27.3% at 4 and 34.7% at 2: it rises below 16. "
                                  "bn_min_values applies to documents without the batch size")
    bn_error_values: int = _t(4, "with fewer than 4 values per channel the batch statistics are mostly noise")
    # -- loss ----------------------------------------------------------------------------------------
    loss_min_windows: int = _t(3, "a loss trend needs at least three windows")
    diverging_factor: float = _t(1.5, "loss over the last third of the run 50% above the first third's: training "
                                      "made it worse")
    loss_spike_factor: float = _t(10.0, "a window's mean loss 10x the first loss: steps overshoot even if the loss "
                                        "later comes back down")
    plateau_min_steps: int = _t(50, "do not call a plateau before this many steps")
    plateau_improvement: float = _t(0.02, "loss over the last third less than 2% below the first third's (2% is "
                                          "above the mini-batch noise of window means; healthy runs fall far more)")
    # -- output head, loss and targets (issue 24) -------------------------------------------------------
    init_gain_too_large: float = _t(10.0, "median variance gain of the Linear/Conv layers at init, Var(y) / mean(x^2), "
                                          "at least 10: five times He's 2, the largest gain a variance-preserving "
                                          "init gives (LeCun/Glorot 1, PyTorch's default 1/3); std 1.0 gives fan_in "
                                          "(64 at width 64, 768 at 768), a healthy transformers init 0.02^2 * fan_in "
                                          "(0.03-0.3)")
    init_gain_in_place: float = _t(0.75, "a median variance gain at init of at least 0.75x the activation's "
                                         "variance-preserving one (He's 2 for ReLU-like, LeCun/Glorot's 1 otherwise) "
                                         "is taken as that init already in place, so no remedy recommends it: He "
                                         "measures 1.9-2.2 per layer on the digits MLPs (sampling spread about 10%), "
                                         "PyTorch's default Linear init 1/3 and Glorot on ReLU 1 (half of He's), "
                                         "both below 0.75x2 = 1.5 and still told to use He")
    initial_loss_excess: float = _t(2.0, "cross-entropy at step 0 at least 2 nats above the uninformed loss of the "
                                         "same call (ln C): logits of spread s score about ln C + s^2 / 2, so 2 nats "
                                         "is a spread near 2. Measured on the 20 tuned-on calibration "
                                         "architectures at their standard init, 3 seeds each: the excess ranges "
                                         "from -0.03 to +0.55 nats (pnasnet; efficientnet +0.51), so 2 is 3.6x the "
                                         "largest healthy excess. Std 1.0 init puts transformers 15 nats above "
                                         "ln(vocab) and classifiers 70-100 nats above ln 3 (issue 25)")
    initial_loss_ratio: float = _t(4.0, "a regression or binary loss at step 0 at least 4x the uninformed one (the "
                                        "targets' mean square for MSE, ln 2 for binary cross-entropy): for "
                                        "independent zero-mean output and target, E[(y_hat - y)^2] = E[y_hat^2] + "
                                        "E[y^2], so 4x is an output three times the targets' mean square")
    target_scale: float = _t(10.0, "regression targets with a root mean square of 10 or more: an output layer at "
                                   "standard init produces values of order 1, so its weights must grow 10x, and "
                                   "the MSE gradient is 10x that of unit-scale targets (LeCun et al. 1998, sec. 4.3)")
    target_scale_reached: float = _t(0.5, "unscaled targets cost nothing when the output already starts at their "
                                          "scale: a step-0 loss below half of what a zero output scores (mean(y^2)) "
                                          "means the initial output already removes half the targets' mean square "
                                          "(a de-standardizing output layer, a bias set to the mean)")
    label_entropy_tolerance: float = _t(0.05, "the first and the last third of the windows after the transient "
                                              "within 5% of the label prior's entropy H (plus two standard errors of "
                                              "a third's mean, the mini-batch noise): settled at what predicting "
                                              "the class frequencies scores (ln 10 = 2.30 +- 0.12 on digits); the 20 "
                                              "tuned-on healthy calibration runs end 17% (bert: 0.57 vs ln 2) to 96% "
                                              "below ln C after 30 steps")
    label_entropy_min_update: float = _t(1e-4, "every weight matrix's update-to-weight ratio at least 1e-4 per step "
                                               "(a tenth of Karpathy's healthy 1e-3): the whole network moves, so a "
                                               "loss stuck at H is neither a learning rate too small nor gradients "
                                               "vanishing before the first layers (a deep sigmoid stack whose head "
                                               "alone learns the prior)")
    label_entropy_min_travel: float = _t(0.1, "the input layer could have travelled a tenth of itself (its largest "
                                              "per-step update ratio times the steps) before a loss at the label "
                                              "entropy counts against the labels: shuffled labels travel 0.21-0.77 "
                                              "(digits MLP, LeNet-5, ViT, the zoo), a paired run at Adam 1e-4 whose "
                                              "loss still falls slowly 0.07 in 60 steps")
    target_scale_cost: float = _t(0.5, "unscaled targets are a warning when, after the transient, the loss still "
                                       "holds half the targets' mean square (what a zero output scores): the "
                                       "model has not yet grown to their scale, so the units cost this run; a "
                                       "model that got below it trains anyway (info, the property kept)")
    targets_outside_warning: float = _t(0.05, "5% of the targets outside the range the output activation can "
                                              "reach: those examples keep an irreducible loss and pin the output "
                                              "at its bound")
    targets_outside_error: float = _t(0.5, "half the targets outside the output's range: the model cannot fit "
                                           "the bulk of the data whatever its weights")
    constant_output_fraction: float = _t(0.9, "the output identical for every example of the batch on 90% of "
                                              "sampled forwards (at least loop_min_observations): it carries "
                                              "nothing of the input; a zero-initialized head is constant only "
                                              "until the first step")
    multihot_fraction: float = _t(0.1, "a tenth of the target rows with two or more labels: a softmax makes "
                                       "labels compete, so each of k labels gets at most 1/k and the loss "
                                       "stays above ln k on those rows")
    relu_logit_zero_fraction: float = _t(0.1, "a tenth of the logits exactly 0 behind a ReLU: those class scores "
                                              "get no gradient and cannot go below the others")
    # -- training loop (issue 18) ----------------------------------------------------------------------
    loop_min_observations: int = _t(3, "a loop pattern (repeated inputs, class mix, clipping) is called only after "
                                       "this many sampled batches or calls: one or two can coincide by chance")
    update_resolution: float = _t(1.19e-7, "float32 machine epsilon: an update lr |g| below eps |w| rounds away, so "
                                           "a parameter with such gradients (a bias right before BatchNorm, whose "
                                           "gradient is zero up to rounding) cannot change and is not called stuck")
    stale_gradient_error: float = _t(0.5, "uncleared gradients on at least half the checked steps: zero_grad is "
                                          "missing, not merely misplaced once (any stale step is already a warning: "
                                          "nothing legitimate steps the optimizer and then adds to the old gradient)")
    unshuffled_distinct_ratio: float = _t(0.5, "distinct classes per batch at most half of E = sum_c 1 - (1 - pi_c)^B, "
                                               "the count expected from shuffled batches of B targets with the run's "
                                               "class shares pi_c (shuffled batches come within a few % of E; "
                                               "sorted data gives 1-2)")
    unshuffled_min_classes: float = _t(2.5, "E above 2.5 before 'one or two classes per batch' means anything: a "
                                            "binary task has E <= 2 however well it is shuffled")
    repeated_batch_fraction: float = _t(0.9, "nearly every sampled input identical to the previous sampled one: "
                                             "one batch is trained on again and again")
    lr_collapse_factor: float = _t(100.0, "the learning rate 100x below its largest value: two decades below, a "
                                          "step barely moves the weights (issue 18)")
    lr_collapse_fraction: float = _t(0.5, "collapsed within the first half of the watched steps and still collapsed "
                                          "at the end: cosine annealing reaches 1/100 only after 93.6% of T_max, "
                                          "linear decay to 0 after 99%, so a schedule stepped once per epoch never "
                                          "gets there this early")
    clip_dominates_factor: float = _t(10.0, "total gradient norm 10x max_norm: clipping divides the step by 10 or "
                                            "more, the effective learning rate is a tenth of the one set")
    clip_dominates_fraction: float = _t(0.9, "on 90% of the calls ('nearly every step'); clipping that bites on the "
                                             "first steps or on spikes is what it is for (Pascanu et al. 2013)")
    loader_first_batch_only: float = _t(1.5, "at most 1.5 batches drawn per DataLoader iterator started: the loop "
                                             "takes the first batch of a fresh iterator (next(iter(loader))); an "
                                             "epoch loop draws the loader's whole length per iterator, and a "
                                             "validation pass over a loader of 2+ batches draws 2+")
    external_write_fraction: float = _t(0.5, "weights rewritten outside the optimizer on at least half the "
                                             "sampled steps checked: a re-initialization in the loop rewrites "
                                             "them every step; a one-off write (loading a checkpoint, a "
                                             "scheduled pruning) is below half")
    frozen_share: float = _t(0.05, "under 5% of the parameter values trainable, all of them biases or norm "
                                    "parameters: BatchNorm-only training of a ResNet leaves about 0.5%, BitFit "
                                    "0.1%; a network with every weight matrix frozen learns only if those weights "
                                    "are pretrained, which the loss (trains_loss_drop) tells")
    rare_step_factor: int = _t(32, "one optimizer step per 32 or more training forwards (or none after 32), "
                                   "with fewer than loop_min_observations steps in the run: gradient "
                                   "accumulation in practice sums 2-16 micro-batches; recipes that sum 32-64 run "
                                   "thousands of steps, so they take many steps and are not called")
    # -- learning rate too low, no nonlinearity (issue 24) ------------------------------------------------
    lr_low_update: float = _t(1e-3, "the input layer (first Linear/Conv weight in forward order) moved under 1e-3 "
                                    "of itself per step in its largest window, the healthy update/weight ratio of "
                                    "the CS231n notes (Karpathy 2016). Alone it does not decide: healthy and "
                                    "fixed runs go below it (the fixed so_66407123 at 2.3e-4, SGD; BN ResNets at "
                                    "8e-4 to 1.07e-3), while the "
                                    "20 tuned-on healthy calibration runs take 7e-3 (DenseNet-BC) to 0.24. The "
                                    "too-low-rate programs take 9e-5 to 3.6e-4 (Adam at 3e-5, SGD through a "
                                    "sigmoid). Interior layers are not read: behind BatchNorm they move 1e-4 in "
                                    "healthy SGD runs")
    lr_low_median_update: float = _t(1e-2, "and the median Linear/Conv weight under 1e-2 of itself per step (its "
                                           "largest window): the step is small across the network, not only in "
                                           "an input layer whose own gradient is small. A healthy transformers "
                                           "type at AdamW 1e-3 steps about 5e-2 (std-0.02 weights) while MRA's "
                                           "first Linear, its attention output, steps 1e-5; the too-low-rate runs "
                                           "take 1e-7 to 5.5e-3 (so_68701979's two layers: 3.9e-3 to 5.5e-3)")
    lr_low_loss_drop: float = _t(0.1, "the loss's last third under a tenth below its reference (the label prior's "
                                      "entropy for a classification loss, else the first loss): it has not moved. "
                                      "Together with lr_low_update and a fall from the first loss under "
                                      "trains_loss_drop: of the 150 healthy, fixed and look-alike runs dumped, the "
                                      "ones under a tenth here (0.08-0.09: so_42472447 fixed, a BN ResNet under a "
                                      "per-batch cosine, a BN CNN on MNIST-1D) step 1e-3 to 5e-3 or fell 23-45% "
                                      "from their first loss; the real bugs shed 0.00 to 0.08")
    same_tensor_tol: float = _t(1e-6, "no_nonlinearity: a layer's input at init is the previous layer's output when "
                                      "their means agree to 1e-6 of its standard deviation (and their variances "
                                      "to 1e-6 of themselves). Two hooks read the same float32 tensor and sum it "
                                      "in float64: they differ by reordering only (~1e-16); a dropout, a scaling "
                                      "or an activation moves the mean by a sizeable part of the std. A tolerance "
                                      "relative to the mean fails where a centred tensor puts the mean near 0: a "
                                      "conv output of mean -1.6e-3 and std 0.46, average-pooled, differs by "
                                      "1.9e-9 (1.2e-6 of its mean, 4e-9 of its std). An average pool of k values "
                                      "adds k float32 roundings (k 2^-24 of the root mean square)")
    lr_warmup_rise: float = _t(2.0, "learning_rate_too_low's warm-up check: the schedule ended at its largest rate "
                                    "and above twice its first, so it rose (a constant rate, or a decay, never "
                                    "doubles its first value). The warm-ups measured rise 5x (a 5-step ramp) to "
                                    "60x (a 200-step ramp cut at step 60): a factor 2 keeps any ramp that at "
                                    "least doubled")
    lr_warmup_last_window: float = _t(1.5, "and the input layer's last measured window stepped at least 1.5x the "
                                           "median of its windows: still on the ramp. A linear ramp still under "
                                           "way puts the last window near twice the median (the median window "
                                           "sits mid-ramp), and more under Adam (7.1x on the digits MLP with a "
                                           "200-step warm-up cut at 60 steps); a warm-up over before the last "
                                           "third leaves the later windows at the median (0.96x after a 5-step "
                                           "warm-up, named): 1.5 sits between")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"threshold {f.name} must be a non-negative number, got {value!r}")

    @classmethod
    def coerce(cls, value: "Thresholds | dict | None") -> "Thresholds":
        """``None`` -> defaults; a dict -> defaults with those names overridden; a Thresholds -> itself."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
            return cls(**value)
        raise TypeError(f"thresholds must be a Thresholds, a dict or None, got {type(value).__name__}")

    def reason(self, name: str) -> str:
        """The documented reason for threshold ``name``."""
        for f in dataclasses.fields(self):
            if f.name == name:
                return f.metadata["reason"]
        raise ValueError(f"unknown threshold {name!r}")

    def describe(self) -> list[dict]:
        """``[{"name", "value", "reason"}]`` for every threshold (for docs and reports)."""
        return [{"name": f.name, "value": getattr(self, f.name), "reason": f.metadata["reason"]}
                for f in dataclasses.fields(self)]
