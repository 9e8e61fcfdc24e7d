# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Impediments to learning, part 1: activation functions
#
# The updating of weights, used by Gradient Descent to minimize the loss, can be inhibited in
# less-than-obvious manners. The power of neural networks comes largely from the non-linear activation
# functions and the simple weight updates of Gradient Descent, but these same non-linear functions
# sometimes interact badly with gradient updates.
#
# Let us examine the plots of the derivatives of the common activation functions: the module's first cell.

# %%
import numpy as np

import impediments as imp
from impediments import experiments
from impediments.report.display import show_claims

fig, _ = imp.plot_activations(np.arange(-5, 5, 0.1))

# %% [markdown]
# The derivative of each of these functions is near zero on a portion of its domain (shaded red). When a
# unit's pre-activation falls there, the weights feeding it receive a **zero** update, and the unit won't
# learn. There are also portions of the domain with a near-linear response (shaded green), and a
# composition of linear operations is linear: a deep network without some active non-linearity loses its
# power.
#
# ## The experiment
# The experiment measures both regions numerically from each function (quick settings, one seed).

# %%
activations = experiments.get("activations")
print(experiments.description("activations"))
result = activations.run(activations.Config.quick(seed=0))
fig, _ = activations.plot(result)

# %% [markdown]
# ## The claims, checked
# Each claim carries the numbers measured and one condition over them; the condition printed is the one
# evaluated. The cell fails if a claim does not hold at this seed (`impediments reproduce` judges them over
# several seeds).

# %%
claims = activations.claims(result)
show_claims(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# ## In the playground
# Start the playground with `impediments playground` in a terminal, then open this link: a sigmoid network
# whose too-large initial weights push the pre-activations into the saturated tails. Watch the histograms
# pile up at 0 and 1 and the doctor report `saturated_units`.

# %%
from impediments.playground import experiment_url

print(experiment_url("activations"))

# %% [markdown]
# ## Without an active non-linearity, depth adds no power
# "The composition of linear operations is linear, so a deep network without some active non-linearity
# loses all its power." The experiment trains a deep network whose activations are the identity, the same
# network with ReLU, and one Linear layer (logistic regression), on MNIST-1D, a task no linear classifier
# solves well: the paper's logistic regression reaches 32 %.

# %%
linear_depth = experiments.get("linear_depth")
print(experiments.description("linear_depth"))
result = linear_depth.run(linear_depth.Config.quick(seed=0))
fig, _ = linear_depth.plot(result)

# %%
claims = linear_depth.claims(result)
show_claims(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground, this link opens a deep network with identity activations on MNIST-1D: its loss
# stalls where one Linear layer's would.

# %%
print(experiment_url("linear_depth"))
