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
# # Impediments to learning, part 8: other normalizations, normalizing every few layers, BatchNorm and Dropout
#
# Layer Normalization and Group Normalization standardize over the features of one example instead of over
# the batch, so they do not depend on the batch size. In practice, to save training and inference cost,
# normalization layers are often applied only every few layers. And there is some controversy over using
# Batch Normalization and Dropout together (Li et al. 2018): Dropout makes the batch statistics seen in
# training differ from the population statistics used at test time.

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## Small batches: BatchNorm against LayerNorm and GroupNorm

# %%
small_batch_norms = experiments.get("small_batch_norms")
print(experiments.description("small_batch_norms"))
result = small_batch_norms.run(small_batch_norms.Config.quick(seed=0))
fig, _ = small_batch_norms.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = small_batch_norms.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: BatchNorm
# at batch size 2.

# %%
print(experiment_url("small_batch_norms"))

# %% [markdown]
# ## Normalizing every k layers

# %%
norm_every_k = experiments.get("norm_every_k")
print(experiments.description("norm_every_k"))
result = norm_every_k.run(norm_every_k.Config.quick(seed=0))
fig, _ = norm_every_k.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = norm_every_k.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: an
# 8-layer ReLU network with BatchNorm.

# %%
print(experiment_url("norm_every_k"))

# %% [markdown]
# ## BatchNorm and Dropout

# %%
bn_dropout = experiments.get("bn_dropout")
print(experiments.description("bn_dropout"))
result = bn_dropout.run(bn_dropout.Config.quick(seed=0))
fig, _ = bn_dropout.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_dropout.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: Dropout
# 0.5 with BatchNorm.

# %%
print(experiment_url("bn_dropout"))
