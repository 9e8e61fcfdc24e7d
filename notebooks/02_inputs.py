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
# # Impediments to learning, part 2: proper scaling of inputs
#
# Gradient Descent updates the weight $W_{(l),j}$ of layer $l$ in proportion to the mini-batch average of
# its input $y_{(l-1),j}$. For layer 1 that is $\bar{x}_j$, the average of input feature $j$. When every
# feature's average has the same sign, every weight's update has the same sign: in two dimensions the
# weights can move only north-east or south-west, and reaching a point to the south-east takes a zig-zag
# (LeCun et al. 1998, *Efficient BackProp*). Features with different variances are updated at different
# rates. Hence: zero-centre the inputs of every layer and give their features equal variance.

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## Zero-centred inputs and the zig-zag
# The experiment follows the two-weight example (same-sign updates, steps to the optimum), then trains a
# small network on digits with raw, centred and standardized inputs (quick settings, one seed).

# %%
zigzag = experiments.get("zigzag")
print(experiments.description("zigzag"))
result = zigzag.run(zigzag.Config.quick(seed=0))
fig, _ = zigzag.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = zigzag.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: raw
# (uncentred) inputs, one hidden tanh layer.

# %%
print(experiment_url("zigzag"))
