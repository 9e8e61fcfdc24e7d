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
# # Impediments to learning, part 3: bad initial choices and dead units
#
# Does the choice of initial weights matter? Most activation functions have large regions where the
# derivative is near zero. Any set of weights that pushes activations there stops learning, because the
# gradients are near zero.
#
# A special case is the **bias**: if a unit's bias is (or becomes) very negative, its pre-activation sits
# in the region of zero gradient, the bias receives no update and stays negative. The unit's output is
# constant (0 for ReLU): a *dead* activation that no longer distinguishes between examples.

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## Dead ReLU units from a negative bias

# %%
dead_bias = experiments.get("dead_bias")
print(experiments.description("dead_bias"))
result = dead_bias.run(dead_bias.Config.quick(seed=0))
fig, _ = dead_bias.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = dead_bias.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: ReLU
# units whose bias starts at -3. Watch the dead fraction per layer.

# %%
print(experiment_url("dead_bias"))
