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
# # Impediments to learning, part 5: constant variance through the layers; Glorot and He
#
# The variance of a product of independent zero-mean variables is $\mathrm{Var}(Y W) = \mathrm{Var}(Y)\,
# \mathrm{Var}(W)$, and a fully connected layer sums $n_{(l-1)}$ such products, so each output feature has
# variance $n_{(l-1)} \mathrm{Var}(W) \mathrm{Var}(Y)$. With too large a weight variance the pre-activations
# grow with depth into the saturated tails (tanh's two peaks, ReLU's peak at zero); with too small a one they
# cluster in the linear region.
#
# Glorot and Bengio (2010) scale the weights to variance $1/n_{(l-1)}$ forward and $1/n_{(l)}$ backward,
# averaged to $2/(n_{(l-1)} + n_{(l)})$; He et al. (2015) use $2/n_{(l-1)}$ for ReLU, half of whose inputs
# fall
# in its inactive region.

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## The distribution of each layer's outputs, by depth
# The module's experiment: a stack of equal fully connected layers, one pass, no weight updates.

# %%
depth_distributions = experiments.get("depth_distributions")
print(experiments.description("depth_distributions"))
result = depth_distributions.run(depth_distributions.Config.quick(seed=0))
fig, _ = depth_distributions.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = depth_distributions.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: ten tanh
# layers with too small initial weights.

# %%
print(experiment_url("depth_distributions"))

# %% [markdown]
# ## Glorot and He initialization

# %%
glorot_he = experiments.get("glorot_he")
print(experiments.description("glorot_he"))
result = glorot_he.run(glorot_he.Config.quick(seed=0))
fig, _ = glorot_he.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = glorot_he.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a
# 20-layer ReLU network with Glorot's initialization; try `he_normal`.

# %%
print(experiment_url("glorot_he"))
