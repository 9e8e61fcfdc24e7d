"""The catalogue of diagnosis codes: what each means, why it stops learning, where it is shown.

Every :class:`~impediments.doctor.Finding` carries one of these codes. The
``experiment`` names the module's experiment that demonstrates the mechanism
(``impediments reproduce <experiment>``).
"""
from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Code:
    """One diagnosis: its name, one-line meaning, and the experiment that shows it."""

    name: str
    summary: str
    experiment: str
    reference: str
    #: why it stops learning (the mechanism), and the first thing to change: the default text of a finding
    explanation: str = ""
    remedy: str = ""
    #: the remedy where the measured init already preserves variance (``doctor.causes.init_in_place``): it
    #: does not recommend He/Glorot, which is in place; ``{measured}`` is replaced by the measured gain; empty
    #: where ``remedy`` names no init
    remedy_init_in_place: str = ""
    #: the experiment for a model without residual blocks, where ``experiment`` shows a residual mechanism
    experiment_plain: str = ""

    @property
    def see(self) -> str:
        """Where the mechanism is shown: its experiment, or (a path ending in ``.py``) the broken example of a
        training-loop bug, whose fixed twin sits beside it."""
        return see_text(self.experiment)


def see_text(experiment: str) -> str:
    """``see: impediments reproduce EXPERIMENT`` (or ``see: impediments doctor EXAMPLE.py``)."""
    if experiment.endswith(".py"):
        return f"see: impediments doctor {experiment}"
    return f"see: impediments reproduce {experiment}"


_HE = "impediments.init.initialize(model, \"he_normal\")"
_GLOROT = "impediments.init.initialize(model, \"glorot_normal\")"
#: every code, once: its meaning, the experiment that shows it, its reference, and the default text of its
#: findings (why it stops learning and what to change; a rule may say more for a variant)
_CODES = (
    Code("dead_units",
         "ReLU-like units whose output was zero for every input seen",
         "dead_bias",
         "Lu et al. 2019, Dying ReLU and initialization; AUTOTRAINER (Zhang et al. 2021)",
         explanation=("These units output zero for every input seen, so their incoming weights get zero gradient "
                      "and can never recover; the layer has lost that much capacity (a large negative bias, a "
                      "too-high learning rate or a bad init pushes pre-activations below zero everywhere)."),
         remedy=("Re-initialize with zero biases and He init matched to ReLU, e.g. "
                 "impediments.init.initialize(model, \"he_normal\", bias=0.0) (or impediments.init.lsuv), lower "
                 "the learning rate, or use leaky_relu/gelu"),
         remedy_init_in_place=("Keep the He weights already in place ({measured}) and set the biases to zero "
                               "(torch.nn.init.zeros_(layer.bias) for each Linear/Conv layer; impediments fix tries "
                               "it as \"bias → 0\"); or lower the learning rate, or use leaky_relu/gelu")),
    Code("saturated_units",
         "sigmoid/tanh-like units that spend most inputs in the zero-derivative region",
         "activations",
         "Glorot & Bengio 2010; DeepDiagnosis (Wardat et al. 2022)",
         explanation=("Most pre-activations sit in the flat tails (the catalog's saturated region), where the "
                      "derivative is nearly zero, so almost no gradient flows through these units and the layers "
                      "below stop learning."),
         remedy=(f"Shrink the pre-activations: Glorot init for tanh/sigmoid ({_GLOROT}), standardized inputs, "
                 f"BatchNorm before the nonlinearity (impediments.norm.BatchNorm), or a non-saturating activation"),
         remedy_init_in_place=("Shrink the pre-activations (the init already preserves variance: {measured}): "
                               "standardized inputs, smaller biases, BatchNorm before the nonlinearity "
                               "(impediments.norm.BatchNorm), or a non-saturating activation")),
    Code("linear_regime",
         "activation inputs almost entirely in the near-linear region: the network is nearly linear",
         "depth_distributions",
         "Glorot & Bengio 2010",
         explanation=("Nearly every input to these hidden nonlinearities stayed, over training, where the function"
                      " equals its tangent line, so the layers compose to an (almost) linear map and extra depth "
                      "adds no expressive power (near-linear at init is what LeCun et al. 1998 recommend; staying "
                      "there is the impediment)."),
         remedy=(f"Increase the init scale to the variance-preserving one ({_GLOROT} for tanh/sigmoid, "
                 f"\"he_normal\" for ReLU), or remove the bias shift that keeps ReLU inputs positive"),
         remedy_init_in_place=("The init already preserves variance ({measured}): the inputs reaching these units "
                               "are small; standardize the inputs, or remove the bias shift that keeps ReLU inputs "
                               "positive")),
    Code("vanishing_activations",
         "activation variance shrinking geometrically with depth",
         "depth_distributions",
         "Glorot & Bengio 2010; He et al. 2015",
         explanation=("The variance of pre-activations shrinks by a constant factor per layer, so deep layers see "
                      "nearly constant inputs and back-propagated gradients shrink the same way (n Var(W) < 1 per "
                      "layer)."),
         remedy=(f"Use the variance-preserving init for the activation, n Var(W) = 1 (Glorot) or 2 (He): {_HE}, or "
                 f"impediments.init.lsuv(model, batch), or add normalization (impediments.norm.BatchNorm)"),
         remedy_init_in_place=("The init already preserves variance ({measured}): look for what "
                               "else removes it (dead or saturated units, a bias shift); else add normalization "
                               "(impediments.norm.BatchNorm) or calibrate each layer with impediments.init.lsuv(model, "
                               "batch)")),
    Code("exploding_activations",
         "activation variance growing geometrically with depth",
         "depth_distributions",
         "He et al. 2015; Zhang et al. 2019 (Fixup)",
         explanation=("The variance of pre-activations grows by a constant factor per layer (n Var(W) > 1, or "
                      "residual branches adding up), driving deep units into saturation or overflow."),
         remedy=(f"Use the variance-preserving init ({_HE} / \"glorot_normal\"); for residual nets without "
                 f"normalization use impediments.init.fixup(model); or add normalization "
                 f"(impediments.norm.BatchNorm)"),
         remedy_init_in_place=("The init already preserves variance ({measured}): for residual nets without "
                               "normalization use impediments.init.fixup(model); or add normalization "
                               "(impediments.norm.BatchNorm), or lower the learning rate if the weights grew")),
    Code("vanishing_gradients",
         "gradients far too small across layers or overall",
         "glorot_he",
         "Hochreiter 1991; Glorot & Bengio 2010",
         explanation=("The back-propagated signal shrinks layer by layer, and with it the relative step of each "
                      "layer's weights, so the first layers learn orders of magnitude slower than the last with a "
                      "single learning rate."),
         remedy=(f"Use the init that preserves variance for the activation ({_GLOROT} for tanh, \"he_normal\" for "
                 f"ReLU), avoid saturating activations in deep stacks, or add normalization or residual connections"),
         remedy_init_in_place=("The init already preserves variance ({measured}): avoid saturating"
                               " activations in deep stacks, or add normalization or residual connections")),
    Code("exploding_gradients",
         "gradients or updates far too large across layers or overall",
         "residual_limits",
         "Pascanu et al. 2013; Zhang et al. 2019 (Fixup)",
         explanation=("Gradients grow layer by layer or are so large that one step moves the weights by a large "
                      "fraction of their own size, so training oscillates or diverges."),
         remedy=(f"Lower the learning rate, use the variance-preserving init ({_HE}), impediments.init.fixup(model)"
                 f" for unnormalized residual nets, or clip gradients (torch.nn.utils.clip_grad_norm_)"),
         remedy_init_in_place=("Lower the learning rate (10x or more, until update-to-weight ratios are near 1e-3) "
                               "or add warm-up; clip gradients (torch.nn.utils.clip_grad_norm_) if spikes remain (the init "
                               "already preserves variance: {measured})"),
         experiment_plain="bn_learning_rates"),
    Code("symmetric_units",
         "units of a layer with identical incoming weights: symmetry never broken",
         "zero_init",
         "Rumelhart, Hinton & Williams 1986; Goodfellow et al. 2016, sec. 8.4",
         explanation=("Units with identical incoming weights compute the same function and receive the same "
                      "gradient, so gradient descent can never make them differ: the layer behaves like a single "
                      "unit (zero or constant init)."),
         remedy=(f"Initialize with random weights: {_HE} (ReLU) or \"glorot_normal\" (tanh/sigmoid); constant init "
                 f"is only safe for biases")),
    Code("uncentered_inputs",
         "input means share a sign and are large relative to their std (zig-zag)",
         "zigzag",
         "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp",
         explanation=("The input features' means share a sign and dominate their spread, so all weight updates of "
                      "a first-layer unit share a sign and gradient descent zig-zags toward the optimum (LeCun et "
                      "al. 1998)."),
         remedy=("Standardize each input feature with training-set statistics: impediments.load_dataset(name, "
                 "standardize=True) or impediments.data.Standardizer (x - mean) / std")),
    Code("unequal_input_scales",
         "input feature variances differ by orders of magnitude",
         "zigzag",
         "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp",
         explanation=("Input feature variances differ by orders of magnitude among the features that vary, so the "
                      "loss surface is stretched along the large-scale features: a learning rate small enough for "
                      "them barely moves the others."),
         remedy=("Standardize each input feature with training-set statistics: impediments.load_dataset(name, "
                 "standardize=True) or impediments.data.Standardizer (x - mean) / std")),
    Code("non_finite",
         "NaN or Inf appeared",
         "residual_limits",
         "Goodfellow et al. 2016, sec. 4.1",
         explanation=("A NaN or Inf appeared; once present it spreads to every weight it touches."),
         remedy=(f"Lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), check the data for "
                 f"NaN, use the variance-preserving init ({_HE}) and numerically safe losses (F.cross_entropy on "
                 f"logits)"),
         remedy_init_in_place=("Lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), check "
                               "the data for NaN and use numerically safe losses (F.cross_entropy on logits)"),
         experiment_plain="bn_learning_rates"),
    Code("bn_small_batch",
         "BatchNorm statistics estimated from too few values per channel",
         "small_batch_norms",
         "Wu & He 2018 (Group Normalization); Ioffe 2017 (Batch Renormalization)",
         explanation=("BatchNorm normalizes with the mean and variance of the current batch; from this few values "
                      "per channel those estimates are noisy, so training sees a randomly rescaled network and "
                      "inference (running statistics) sees a different one."),
         remedy=("Use a larger batch, or a batch-independent norm: impediments.norm.GroupNorm / "
                 "impediments.norm.LayerNorm (or torch.nn.SyncBatchNorm across devices)")),
    Code("dropout_before_bn",
         "Dropout feeding a BatchNorm: variance shift between training and inference",
         "bn_dropout",
         "Li, Chen, Hu & Yang 2019",
         explanation=("Dropout scales the variance of its output by about 1/p during training but not at "
                      "inference, so the BatchNorm after it learns running statistics that do not match test-time "
                      "inputs (variance shift)."),
         remedy=("Move Dropout after the last BatchNorm (just before the classifier), or drop it; measure the "
                 "shift with impediments.norm.variance_shift")),
    Code("bn_inference_mode_in_training",
         "BatchNorm normalizing with running statistics while the model trains",
         "frozen_bn_transfer",
         "Ioffe & Szegedy 2015; Keras 3 BatchNormalization docs",
         explanation=("These BatchNorm layers were in eval mode while the model trained, so they normalize with "
                      "stale running statistics that no longer match the changing activations; a later "
                      "model.train() silently flips them back, so their behaviour depends on call order."),
         remedy=("To freeze BN on purpose (transfer learning) use impediments.norm.freeze(model), which survives "
                 "model.train(); otherwise do not call .eval() on BN layers during training")),
    Code("weight_decay_with_bn",
         "L2 on weights that feed BatchNorm only changes the effective learning rate",
         "l2_with_bn",
         "van Laarhoven 2017",
         explanation=("BatchNorm makes the output invariant to the scale of these weights, so L2 does not "
                      "regularize them: it only shrinks ||w|| and thereby raises the effective learning rate eta /"
                      " ||w||^2 (van Laarhoven 2017)."),
         remedy=("Keep it if you tuned the learning rate with it; otherwise put these weights in a parameter group"
                 " with weight_decay=0 and tune the learning rate directly")),
    Code("diverging_loss",
         "the loss rose or became non-finite",
         "bn_learning_rates",
         "Goodfellow et al. 2016, sec. 8.1",
         explanation=("The loss grew instead of falling: the steps overshoot the minimum along high-curvature "
                      "directions (learning rate too large for the curvature), and each overshoot makes it worse."),
         remedy=("Lower the learning rate (start 10x lower), standardize the inputs, use the variance-preserving "
                 "init or BatchNorm to allow larger rates"),
         remedy_init_in_place=("Lower the learning rate (start 10x lower), standardize the inputs, or add "
                               "BatchNorm to allow larger rates")),
    Code("loss_plateau",
         "the loss did not fall",
         "glorot_he",
         "He et al. 2015; Glorot & Bengio 2010",
         explanation=("The loss has not fallen below where it started: the gradient signal is blocked (dead, "
                      "saturated or symmetric units, vanishing gradients) or the learning rate is far too small."),
         remedy=(f"Check the other findings first; then use the variance-preserving init ({_HE}), standardized "
                 f"inputs and a larger learning rate"),
         remedy_init_in_place=("Check the other findings first; then standardized inputs and a larger learning "
                               "rate (the init already preserves variance: {measured})")),
    Code("model_in_eval_mode",
         "the optimizer stepped after forwards of the model in eval mode only (no model.train())",
         "frozen_bn_transfer",
         "Ioffe & Szegedy 2015; Srivastava et al. 2014 (Dropout); PyTorch Module.train docs",
         explanation=("The optimizer stepped although the forwards before it ran with the model in eval mode: "
                      "Dropout was off and BatchNorm normalized with its running statistics instead of the batch's"
                      " (and never updated them), so the model trained is not the one the loop meant to train "
                      "(usually a model.eval() for validation without model.train() after it)."),
         remedy=("Call model.train() before the training forwards of every epoch (after each validation pass); "
                 "freeze BatchNorm on purpose with impediments.norm.freeze(model) instead of eval()")),
    # training-loop bugs (issue 18): the demonstration is a broken example next to its fixed twin;
    # the explanation and remedy of their findings are written by their rules
    Code("gradients_not_cleared",
         "a backward began with the previous step's gradient still in .grad (no zero_grad)",
         "examples/loop_gradients_not_cleared.py",
         "Jiang et al. 2025 (TrainCheck, OSDI)"),
    Code("parameters_not_updated",
         "trainable parameters that receive gradients but never change (not in the optimizer, lr 0)",
         "examples/loop_parameters_not_updated.py",
         "Jiang et al. 2025 (TrainCheck, OSDI)"),
    Code("parameters_without_gradient",
         "trainable parameters that never receive a gradient: the graph is cut",
         "examples/loop_parameters_without_gradient.py",
         "Jiang et al. 2025 (TrainCheck, OSDI)"),
    Code("softmax_before_loss",
         "probabilities fed to a loss that applies its own (log-)softmax or sigmoid",
         "examples/loop_softmax_before_loss.py",
         "PyTorch CrossEntropyLoss docs; Goodfellow et al. 2016, sec. 6.2.2"),
    Code("loss_broadcast",
         "a regression loss whose input and target shapes differ: broadcasting compares N x N pairs",
         "examples/loop_loss_broadcast.py",
         "PyTorch MSELoss docs (broadcast warning)"),
    Code("output_head_mismatch",
         "the output head, the loss and the targets disagree (a softmax over one unit, a bounded output for "
         "targets outside its range, softmax on multi-label targets, class indices outside [0, C))",
         "examples/head_softmax_one_unit.py",
         "Goodfellow, Bengio & Courville 2016, sec. 6.2.2 (output units and their losses); Bishop 2006, sec. 5.2; "
         "DeepFD (Cao et al. 2022): the output activation is the most frequent root cause of real bugs",
         explanation=("The last layer's activation, the loss and the targets do not describe the same task, so "
                      "the loss cannot reach its minimum whatever the weights: the output cannot take the values "
                      "the targets ask for, or it does not depend on the input at all."),
         remedy=("Match the head to the task: C exclusive classes -> C logits into cross_entropy (no softmax); "
                 "binary or multi-label -> one logit per label into binary_cross_entropy_with_logits (no sigmoid); "
                 "regression -> a linear output into mse_loss, with standardized targets")),
    Code("dropout_on_output",
         "dropout applied to the model's output: a random share of the logits set to 0 at every training step",
         "examples/head_dropout_on_output.py",
         "Srivastava et al. 2014, Dropout (applied to hidden units, not to the output layer)",
         explanation=("The model's last module is a dropout, so in training a fraction p of the logits is zeroed "
                      "(and the rest scaled by 1 / (1 - p)) at every step: the loss is computed on a corrupted output, "
                      "the zeroed classes get no gradient that step, and training and evaluation see different heads."),
         remedy="Move the dropout before the last layer (Dropout -> Linear), never after it"),
    Code("uninformative_labels",
         "the loss settles at the entropy of the label frequencies while the model moves: labels unrelated to inputs",
         "examples/head_uninformative_labels.py",
         "Zhang et al. 2017, Understanding deep learning requires rethinking generalization (random labels); "
         "Karpathy 2019 ('input-independent baseline')",
         explanation=("A classifier that predicts only the class frequencies scores their entropy H, whatever the "
                      "input. The loss reached H and stayed there while the output varied with the input and the "
                      "weights moved: the inputs tell the model nothing about the labels."),
         remedy=("Check that labels and inputs stay paired: shuffle them with one permutation (X[perm], y[perm]) or "
                 "a DataLoader over a Dataset of (x, y) pairs, and that the label column is the right one")),
    Code("unscaled_targets",
         "regression targets far from unit scale (the target-side twin of uncentered_inputs)",
         "examples/head_unscaled_targets.py",
         "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp, sec. 4.3 (targets); Goodfellow et al. 2016, "
         "sec. 8.7.1 (preprocessing)",
         explanation=("The regression targets' root mean square is far from 1, while an output layer at its standard "
                      "init produces values of order 1: the first steps are spent growing the output layer to the "
                      "targets' scale, the MSE gradient 2 (y_hat - y) is as many times larger as the targets are, and "
                      "Adam, which moves each weight by about lr per step, needs |mean| / lr steps to reach the mean."),
         remedy=("Standardize the targets with training-set statistics, y' = (y - mean) / std, train on y', and map "
                 "predictions back with y_hat * std + mean")),
    Code("init_scale_too_large",
         "weights initialized far too large: every layer multiplies its input's variance by fan_in * sigma^2",
         "glorot_he",
         "LeCun et al. 1998 (Efficient BackProp); Glorot & Bengio 2010; He et al. 2015",
         explanation=("A layer with zero-mean weights of variance sigma^2 multiplies its input's variance by "
                      "fan_in * sigma^2: 1 for LeCun/Glorot, 2 for He. Initialized at std 1.0 (initializer_range=1.0, "
                      "or nn.init.normal_ with its default std) each layer multiplies it by fan_in instead, so the "
                      "signal grows by orders of magnitude per block, the logits come out large and confidently "
                      "wrong, and softmaxes and gates saturate before the first step."),
         remedy=("Initialize at the model's own scale: for a transformers model, the config's initializer_range "
                 "(0.02 by default) and model.apply(model._init_weights) (or build it again from the config); for "
                 "plain PyTorch, each layer's reset_parameters(), or std 1/sqrt(fan_in) (LeCun) / sqrt(2/fan_in) "
                 "(He)")),
    Code("initial_loss_high",
         "the loss at initialization far above what an uninformed prediction scores (ln C for C classes)",
         "examples/head_initial_loss_high.py",
         "Karpathy 2019, A Recipe for Training Neural Networks ('verify loss @ init'); Glorot & Bengio 2010; "
         "Radford et al. 2019 (GPT-2: initializer_range 0.02)",
         explanation=("A model that knows nothing yet should predict the uniform distribution and score ln C (cross-"
                      "entropy over C classes), ln 2 (binary) or the targets' mean square (MSE against a zero "
                      "output). Far above that, the outputs are large and confidently wrong: logits with a spread "
                      "s score about ln C + s^2 / 2. The first steps are spent shrinking them instead of learning, and "
                      "large logits saturate the softmax, whose gradient then vanishes for the examples it gets wrong."),
         remedy=("Shrink the output at init: the init scale (initializer_range 0.02 or the model's own "
                 "_init_weights, not std 1.0), the last layer's weights scaled down or zeroed "
                 "(nn.init.zeros_(head.weight)), or a missing 1/sqrt(d) or temperature on the logits")),
    Code("unshuffled_batches",
         "batches hold far fewer classes than shuffled batches would: the data is not shuffled",
         "examples/loop_unshuffled_batches.py",
         "Bottou 2012, Stochastic gradient descent tricks; LeCun et al. 1998"),
    Code("repeated_batch",
         "the same input batch at every sampled step",
         "examples/loop_repeated_batch.py",
         "Jiang et al. 2025 (TrainCheck, OSDI)"),
    Code("learning_rate_collapsed",
         "the learning rate fell 100x early in the run (a scheduler stepped per batch)",
         "examples/loop_learning_rate_collapsed.py",
         "Loshchilov & Hutter 2017 (SGDR); PyTorch lr_scheduler docs"),
    Code("gradient_clipping_dominates",
         "clip_grad_norm_ or clip_grad_value_ cuts nearly every gradient by 10x or more",
         "examples/loop_gradient_clipping_dominates.py",
         "Pascanu et al. 2013; Zhang et al. 2020 (why clipping accelerates training)"),
    Code("optimizer_rarely_steps",
         "the optimizer steps once in many forward/backward passes, or never",
         "examples/loop_optimizer_rarely_steps.py",
         "Jiang et al. 2025 (TrainCheck, OSDI: silent training errors); issue 24"),
    Code("parameters_reset",
         "the weights are rewritten outside the optimizer between steps: the model re-initialized in the loop",
         "examples/loop_parameters_reset.py",
         "Jiang et al. 2025 (TrainCheck, OSDI: silent training errors); issue 24"),
    Code("almost_all_frozen",
         "only biases and normalization parameters are trainable: every weight matrix is frozen",
         "examples/loop_almost_all_frozen.py",
         "Frankle et al. 2021 (training BatchNorm and only BatchNorm); Ben Zaken et al. 2022 (BitFit); issue 24"),
    Code("learning_rate_too_low",
         "the loss has barely moved while the weights move a tiny fraction of themselves per step: the rate is too low",
         "examples/learning_rate_too_low.py",
         "Karpathy 2016, CS231n notes, Neural Networks Part 3 (update/weight ratio ~1e-3); Bengio 2012, "
         "Practical recommendations for gradient-based training (the learning rate, sec. 3.1); issue 24",
         explanation=("Each step moves these weights by a tiny fraction of themselves, and nothing else holds the "
                      "loss (no dead or saturated units, no vanishing gradient, no collapsed schedule, a varying "
                      "output): over the whole run they could travel only that fraction times the steps, so the "
                      "loss is still near where it started. A larger learning rate (or many more steps) pays."),
         remedy=("Raise the learning rate about 10x (impediments fix tries it and checks the loss), or use an "
                 "adaptive optimizer such as torch.optim.Adam(params, lr=1e-3), whose step per weight is set by the "
                 "learning rate rather than by the size of the gradient")),
    Code("no_nonlinearity",
         "stacked Linear/Conv layers with no nonlinearity between them: the whole stack is one affine map",
         "examples/no_nonlinearity.py",
         "Goodfellow, Bengio & Courville 2016, Deep Learning, sec. 6.1 (a composition of linear maps is linear); "
         "Saxe, McClelland & Ganguli 2014 (deep linear networks)",
         explanation=("At init, each Linear/Conv layer's input is the previous one's output (the same count, mean "
                      "and variance) or an average pool of it, and no hidden activation runs (an activation on the "
                      "model's output, a sigmoid head, is allowed: a monotone map of the last output adds no "
                      "expressive power), with no recurrent module or residual stream: W2 (W1 x + b1) + b2 = "
                      "(W2 W1) x + (W2 b1 + b2), and an average pool is linear too, so the stack can only fit the best "
                      "affine map of its input, however many layers it has; the loss settles at that fit. A warning "
                      "once it settled having shed under trains_loss_drop of its reference (the best constant "
                      "prediction's loss for a regression, the label prior for a classification)."),
         remedy=("Put a nonlinearity between the layers, e.g. nn.Sequential(nn.Linear(a, h), nn.ReLU(), "
                 "nn.Linear(h, b)) (impediments fix tries ReLU and checks the loss); if a linear model is meant, "
                 "one Linear layer is the same model with fewer parameters")),
)
CODES: dict[str, Code] = {c.name: c for c in _CODES}


def check_code(code: str) -> str:
    """Return ``code`` if known, else raise a ValueError listing the valid codes."""
    if code not in CODES:
        raise ValueError(f"unknown diagnosis code {code!r}; valid: {', '.join(CODES)}")
    return code


def check_severity(severity: str) -> str:
    """Return ``severity`` if valid, else raise a ValueError listing the valid ones."""
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r}; valid: {', '.join(SEVERITIES)}")
    return severity
