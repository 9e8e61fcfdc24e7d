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
# # Impediments to learning, part 7: Batch Normalization
#
# Normalizing the inputs of layer 1 is not enough: the same argument applies to every layer, and
# initialization acts only before the first step. Batch Normalization (Ioffe and Szegedy 2015) standardizes
# each feature over the mini-batch and then shifts and scales it with learned $\beta, \gamma$:
#
# $$\mu_B = \frac{1}{m_B} \sum_{i=1}^{m_B} y^{(i)}, \quad
# \sigma_B^2 = \frac{1}{m_B} \sum_{i=1}^{m_B} (y^{(i)} - \mu_B)^2, \quad
# \hat{y}^{(i)} = \frac{y^{(i)} - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \quad
# z^{(i)} = \gamma \hat{y}^{(i)} + \beta$$
#
# It makes saturating activations trainable, allows higher learning rates, and at inference uses fixed
# population statistics (a moving average) instead of the batch's. L2 regularization has no regularizing
# effect on the weights that feed a BatchNorm layer: it changes their scale, and with it the effective
# learning rate (van Laarhoven 2017).

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## BatchNorm rescues a sigmoid network

# %%
bn_sigmoid = experiments.get("bn_sigmoid")
print(experiments.description("bn_sigmoid"))
result = bn_sigmoid.run(bn_sigmoid.Config.quick(seed=0))
fig, _ = bn_sigmoid.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_sigmoid.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a sigmoid
# network with BatchNorm.

# %%
print(experiment_url("bn_sigmoid"))

# %% [markdown]
# ## BatchNorm's outputs keep mean 0 and variance 1

# %%
bn_output_stats = experiments.get("bn_output_stats")
print(experiments.description("bn_output_stats"))
result = bn_output_stats.run(bn_output_stats.Config.quick(seed=0))
fig, _ = bn_output_stats.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_output_stats.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a ReLU
# network with BatchNorm.

# %%
print(experiment_url("bn_output_stats"))

# %% [markdown]
# ## BatchNorm before or after the activation

# %%
bn_placement = experiments.get("bn_placement")
print(experiments.description("bn_placement"))
result = bn_placement.run(bn_placement.Config.quick(seed=0))
fig, _ = bn_placement.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_placement.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a ReLU network with
# BatchNorm after each activation.

# %%
print(experiment_url("bn_placement"))

# %% [markdown]
# ## The learned γ and β

# %%
bn_gamma_beta = experiments.get("bn_gamma_beta")
print(experiments.description("bn_gamma_beta"))
result = bn_gamma_beta.run(bn_gamma_beta.Config.quick(seed=0))
fig, _ = bn_gamma_beta.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_gamma_beta.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a sigmoid network with
# BatchNorm before each sigmoid; watch the pre-activation histograms spread past the linear region.

# %%
print(experiment_url("bn_gamma_beta"))

# %% [markdown]
# ## Higher learning rates

# %%
bn_learning_rates = experiments.get("bn_learning_rates")
print(experiments.description("bn_learning_rates"))
result = bn_learning_rates.run(bn_learning_rates.Config.quick(seed=0))
fig, _ = bn_learning_rates.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_learning_rates.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a ReLU
# network with BatchNorm at learning rate 3.

# %%
print(experiment_url("bn_learning_rates"))

# %% [markdown]
# ## Why higher rates work: the size of the derivatives

# %%
bn_gradient_scale = experiments.get("bn_gradient_scale")
print(experiments.description("bn_gradient_scale"))
result = bn_gradient_scale.run(bn_gradient_scale.Config.quick(seed=0))
fig, _ = bn_gradient_scale.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_gradient_scale.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a ReLU network with
# BatchNorm at learning rate 1; compare the gradient norms with BatchNorm switched off.

# %%
print(experiment_url("bn_gradient_scale"))

# %% [markdown]
# ## Inference with population statistics

# %%
bn_inference = experiments.get("bn_inference")
print(experiments.description("bn_inference"))
result = bn_inference.run(bn_inference.Config.quick(seed=0))
fig, _ = bn_inference.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = bn_inference.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a ReLU
# network with BatchNorm.

# %%
print(experiment_url("bn_inference"))

# %% [markdown]
# ## L2 regularization with BatchNorm

# %%
l2_with_bn = experiments.get("l2_with_bn")
print(experiments.description("l2_with_bn"))
result = l2_with_bn.run(l2_with_bn.Config.quick(seed=0))
fig, _ = l2_with_bn.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = l2_with_bn.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a ReLU
# network with BatchNorm trained with AdamW.

# %%
print(experiment_url("l2_with_bn"))
