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
# # Impediments to learning, part 6: the limits of good initialization; layer-wise pre-training
#
# The Glorot and He initializers assume a sequential network: connections only between consecutive layers.
# With residual connections the analysis is flawed, and other techniques (such as Batch Normalization) must
# be used.
#
# Before good initializers were known, *layer-wise pre-training* was popular: train each layer as the
# encoder of an autoencoder on that layer's inputs, discard the decoder, and keep the encoder's weights,
# which are not random but summarize the structure of the inputs (much as principal components do).

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## Residual networks

# %%
residual_limits = experiments.get("residual_limits")
print(experiments.description("residual_limits"))
result = residual_limits.run(residual_limits.Config.quick(seed=0))
fig, _ = residual_limits.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = residual_limits.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a
# 20-layer ReLU network with He initialization.

# %%
print(experiment_url("residual_limits"))

# %% [markdown]
# ## Greedy layer-wise pre-training

# %%
layerwise_pretraining = experiments.get("layerwise_pretraining")
print(experiments.description("layerwise_pretraining"))
result = layerwise_pretraining.run(layerwise_pretraining.Config.quick(seed=0))
fig, _ = layerwise_pretraining.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = layerwise_pretraining.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a 6-layer
# sigmoid network.

# %%
print(experiment_url("layerwise_pretraining"))

# %% [markdown]
# ## The pre-training autoencoder and principal components

# %%
autoencoder_pca = experiments.get("autoencoder_pca")
print(experiments.description("autoencoder_pca"))
result = autoencoder_pca.run(autoencoder_pca.Config.quick(seed=0))
fig, _ = autoencoder_pca.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = autoencoder_pca.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: the page has no
# autoencoder, so it opens the deep sigmoid network that pre-training is for.

# %%
print(experiment_url("autoencoder_pca"))
