"""Each loss against an independent float64 NumPy implementation of its
published formula: values, every term, gradients (central finite differences
of the NumPy version) and TiCo's running covariance."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax import methods
from ssljax.errors import InputError
from ssljax.methods import tico
from ssljax.methods import vicreg
from ssljax.methods import vicreg_tico

N, D = 12, 6


def _inputs(seed, scale=0.7):
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(N, D)) * scale
  z2 = z1 + 0.5 * rng.normal(size=(N, D)) * scale
  return z1, z2


def _random_c(seed):
  a = np.random.default_rng(seed).normal(size=(D, D))
  return a @ a.T / D


# --- NumPy float64 references, written from the papers' formulas. ---

def np_vicreg_terms(a, b):
  n, d = a.shape
  def std_hinge(z):
    return np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(axis=0, ddof=1) + 1e-4)))
  def off_diagonal_cov(z):
    centred = z - z.mean(axis=0)
    cov = centred.T @ centred / (n - 1)
    return (np.sum(cov ** 2) - np.sum(np.diag(cov) ** 2)) / d
  return {'invariance': np.mean((a - b) ** 2),
          'variance': 0.5 * (std_hinge(a) + std_hinge(b)),
          'covariance': off_diagonal_cov(a) + off_diagonal_cov(b)}


def np_vicreg(a, b):
  t = np_vicreg_terms(a, b)
  return 25 * t['invariance'] + 25 * t['variance'] + t['covariance']


def unit(z):
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def np_next_c(c, z, beta):
  return beta * c + (1 - beta) * z.T @ z / len(z)


def np_quadratic(z, c):
  return np.mean([row @ c @ row for row in z])


def np_tico(a, b, c_new, rho=8.0):
  """c_new is the already-updated C, a constant for differentiation."""
  a, b = unit(a), unit(b)
  return 1 - np.mean(np.sum(a * b, axis=1)) + rho * np_quadratic(a, c_new)


def np_hybrid(a, b, c_new, nu, normalize, both):
  t = np_vicreg_terms(a, b)
  branches = [a, b] if both else [a]
  if normalize:
    branches = [unit(z) for z in branches]
  cov = np.mean([np_quadratic(z, c_new) for z in branches])
  return 25 * t['invariance'] + 25 * t['variance'] + nu * cov


def hybrid_next_c(c, a, b, beta, normalize, both):
  branches = [a, b] if both else [a]
  if normalize:
    branches = [unit(z) for z in branches]
  return np_next_c(c, np.concatenate(branches), beta)


def finite_difference_grad(f, x, h=1e-6):
  grad = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    step = np.zeros_like(x)
    step[idx] = h
    grad[idx] = (f(x + step) - f(x - step)) / (2 * h)
  return grad


def _check_grads(jax_loss, np_loss, z1, z2):
  """jax_loss(z1, z2) in float32 vs finite differences of np_loss in float64."""
  g1, g2 = jax.grad(jax_loss, argnums=(0, 1))(jnp.float32(z1), jnp.float32(z2))
  np.testing.assert_allclose(
      g1, finite_difference_grad(lambda x: np_loss(x, z2), z1),
      rtol=2e-4, atol=2e-5)
  np.testing.assert_allclose(
      g2, finite_difference_grad(lambda x: np_loss(z1, x), z2),
      rtol=2e-4, atol=2e-5)


# --- Tests. ---

@pytest.mark.parametrize('seed, scale', [(0, 0.7), (1, 1.5), (2, 0.2)])
def test_vicreg_value_terms_and_gradients(seed, scale):
  z1, z2 = _inputs(seed, scale)
  loss, terms = vicreg.vicreg_loss(jnp.float32(z1), jnp.float32(z2))
  np.testing.assert_allclose(loss, np_vicreg(z1, z2), rtol=1e-5)
  for name, value in np_vicreg_terms(z1, z2).items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=1e-7)
  _check_grads(lambda a, b: vicreg.vicreg_loss(a, b)[0], np_vicreg, z1, z2)


@pytest.mark.parametrize('seed', [0, 1])
def test_tico_value_terms_and_gradients(seed):
  z1, z2 = _inputs(seed)
  c = _random_c(seed)
  c_new = np_next_c(c, unit(z1), 0.9)
  loss, terms, c_out = tico.tico_loss(jnp.float32(z1), jnp.float32(z2),
                                      jnp.float32(c), beta=0.9, rho=8.0)
  np.testing.assert_allclose(c_out, c_new, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss, np_tico(z1, z2, c_new), rtol=1e-5)
  np.testing.assert_allclose(
      terms['invariance'], 1 - np.mean(np.sum(unit(z1) * unit(z2), 1)),
      rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(terms['covariance'],
                             np_quadratic(unit(z1), c_new), rtol=1e-5)
  # No gradient flows through B: the reference holds C_new constant.
  _check_grads(
      lambda a, b: tico.tico_loss(a, b, jnp.float32(c))[0],
      lambda a, b: np_tico(a, b, c_new), z1, z2)


def test_tico_running_covariance_follows_the_recursion():
  rng = np.random.default_rng(5)
  c_np = np.zeros((D, D))
  c_jax = tico.init_state(None, D)
  assert c_jax.shape == (D, D) and not np.any(c_jax)
  for _ in range(5):
    z1, z2 = rng.normal(size=(N, D)), rng.normal(size=(N, D))
    _, _, c_jax = tico.tico_loss(jnp.float32(z1), jnp.float32(z2), c_jax,
                                 beta=0.9)
    c_np = 0.9 * c_np + 0.1 * unit(z1).T @ unit(z1) / N
  np.testing.assert_allclose(c_jax, c_np, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('normalize, both',
                         list(itertools.product([True, False], repeat=2)))
def test_hybrid_value_and_gradients(normalize, both):
  z1, z2 = _inputs(3)
  c = _random_c(3)
  nu, beta = 3.0, 0.8
  c_new = hybrid_next_c(c, z1, z2, beta, normalize, both)
  kwargs = dict(nu=nu, beta=beta, normalize=normalize, both_branches=both)
  loss, terms, c_out = vicreg_tico.vicreg_tico_loss(
      jnp.float32(z1), jnp.float32(z2), jnp.float32(c), **kwargs)
  np.testing.assert_allclose(c_out, c_new, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(
      loss, np_hybrid(z1, z2, c_new, nu, normalize, both), rtol=1e-5)
  reference = np_vicreg_terms(z1, z2)
  for name in ('invariance', 'variance'):
    np.testing.assert_allclose(terms[name], reference[name], rtol=1e-5)
  _check_grads(
      lambda a, b: vicreg_tico.vicreg_tico_loss(a, b, jnp.float32(c),
                                                **kwargs)[0],
      lambda a, b: np_hybrid(a, b, c_new, nu, normalize, both), z1, z2)


def test_registry_builds_state_and_rejects_unknown_names():
  cfg = tico.default_config()
  assert methods.get('tico').init_state(cfg, 7).shape == (7, 7)
  assert methods.get('vicreg').init_state(vicreg.default_config(), 7) == ()
  with pytest.raises(InputError, match="allowed values.*'tico'.*'vicreg'"):
    methods.get('vicregg')
