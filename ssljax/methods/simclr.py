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

from ssljax import methods


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float = 0.2
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Returns the NT-Xent loss and the share of views whose positive is their
  most similar view (the contrastive task's accuracy)."""
  z = jnp.concatenate([z1, z2]).astype(jnp.float32)
  z = z / jnp.linalg.norm(z, axis=1, keepdims=True)
  n = z1.shape[0]
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_probs = jax.nn.log_softmax(logits, axis=1)
  loss = -jnp.mean(log_probs[jnp.arange(2 * n), positive])
  accuracy = jnp.mean(jnp.argmax(logits, axis=1) == positive)
  return loss, {'nt_xent': loss, 'contrastive_accuracy': accuracy}


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(name='simclr', temperature=0.2))


def _loss(outputs, state, cfg):
  loss, terms = nt_xent(outputs['z1'], outputs['z2'], cfg.temperature)
  return loss, terms, state


methods.register('simclr', methods.Method(loss=_loss))
