"""SimCLR's NT-Xent loss (Chen et al., ICML 2020, Algorithm 1).

The 2N L2-normalised projections of the global batch, s_ij = z_i . z_j:
  l(i, j) = -log exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)
  L = 1 / (2N) sum_k [ l(2k-1, 2k) + l(2k, 2k-1) ]
Every other view in the global batch is a negative. Under `jit` the arrays
are global, so on a mesh XLA gathers the negatives from every device.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax import ranges
from ssljax.methods import common


def default_config() -> ml_collections.ConfigDict:
  """Temperature 0.2, solo-learn's on CIFAR."""
  return ml_collections.ConfigDict(dict(name='simclr', temperature=0.2))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {'temperature': ranges.POSITIVE}

# What each setting of default_config() means (--show_config).
HELP = {
    'temperature': "the NT-Xent loss's softmax temperature",
}


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Returns the NT-Xent loss and the share of views whose positive is their
  most similar view (the contrastive task's accuracy)."""
  z = common.l2_normalize(jnp.concatenate([z1, z2]))
  n = z1.shape[0]
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_probs = jax.nn.log_softmax(logits, axis=1)
  loss = -jnp.mean(log_probs[jnp.arange(2 * n), positive])
  accuracy = jnp.mean(jnp.argmax(logits, axis=1) == positive)
  return loss, {'nt_xent': loss, 'contrastive_accuracy': accuracy}


def make(config: ml_collections.ConfigDict) -> common.Method:
  temperature = config.method.temperature

  def loss(outputs, state):
    value, terms = nt_xent(outputs['z1'], outputs['z2'], temperature)
    return value, terms, state

  return common.joint_embedding(config, loss)
