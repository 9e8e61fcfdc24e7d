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
# # Impediments to learning, part 9: BatchNorm and transfer learning
#
# In transfer learning the base model is frozen and only new layers are trained. BatchNorm layers hold
# non-trainable weights, the population statistics. *Inference mode* uses them when the model is not
# training; the *frozen state* is what happens during training when a layer's weights are frozen. Keras
# decided that `trainable = False` puts a BatchNorm layer in inference mode even while the model trains, so
# that freezing a whole base model also freezes its statistics. In PyTorch, `requires_grad_(False)` does not:
# a frozen BatchNorm in training mode keeps updating its running statistics unless it is put in `eval()`.

# %%
from impediments import experiments
from impediments.report.display import show_claims
from impediments.playground import experiment_url


show = show_claims   # each claim typeset, then "holds: CONDITION (measured numbers)"

# %% [markdown]
# ## Frozen BatchNorm when fine-tuning on a small target task

# %%
frozen_bn_transfer = experiments.get("frozen_bn_transfer")
print(experiments.description("frozen_bn_transfer"))
result = frozen_bn_transfer.run(frozen_bn_transfer.Config.quick(seed=0))
fig, _ = frozen_bn_transfer.plot(result)

# %% [markdown]
# The module's claims about this experiment, measured at this seed; the cell fails unless each holds.

# %%
claims = frozen_bn_transfer.claims(result)
show(claims)
assert all(c.passed for c in claims), [c.text for c in claims if not c.passed]

# %% [markdown]
# In the playground (start it with `impediments playground`), this link opens the same setup live: a
# BatchNorm network at batch size 8.

# %%
print(experiment_url("frozen_bn_transfer"))
