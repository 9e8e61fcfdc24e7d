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
# # Impediments to learning, part 4: identical weights
#
# Suppose all $n_l$ units of layer $l$ start with the *same* weights and bias. Two units $j, j'$ then compute
# the same activation, receive the same gradient and the same update: they start identical and stay
# identical, and can never come to recognize different features. Random initialization breaks this
# symmetry. With all weights zero there is no way to break it, and zero weights also give zero activations.

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## All weights zero

# %%
zero_init = experiments.get("zero_init")
print(experiments.description("zero_init"))
result = zero_init.run(zero_init.Config.quick(seed=0))
fig, _ = zero_init.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = zero_init.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a sigmoid
# network initialized with zeros.

# %%
print(experiment_url("zero_init"))

# %% [markdown]
# ## Identical non-zero weights

# %%
identical_init = experiments.get("identical_init")
print(experiments.description("identical_init"))
result = identical_init.run(identical_init.Config.quick(seed=0))
fig, _ = identical_init.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = identical_init.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a tanh
# network whose units all start with the same weights.

# %%
print(experiment_url("identical_init"))
