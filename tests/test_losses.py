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
from ssljax.methods import barlow_twins
from ssljax.methods import byol
from ssljax.methods import simclr
from ssljax.methods import simsiam
from ssljax.methods import tico
from ssljax.methods import vicreg
from ssljax.methods import vicreg_tico

N, D = 12, 6
# The papers' coefficients, as the NumPy references below write them.
VICREG = dict(sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0)
TICO = dict(beta=0.9, rho=8.0)


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
  loss, terms = vicreg.vicreg_loss(jnp.float32(z1), jnp.float32(z2), **VICREG)
  np.testing.assert_allclose(loss, np_vicreg(z1, z2), rtol=1e-5)
  for name, value in np_vicreg_terms(z1, z2).items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=1e-7)
  _check_grads(lambda a, b: vicreg.vicreg_loss(a, b, **VICREG)[0], np_vicreg,
               z1, z2)


@pytest.mark.parametrize('seed', [0, 1])
def test_tico_value_terms_and_gradients(seed):
  z1, z2 = _inputs(seed)
  c = _random_c(seed)
  c_new = np_next_c(c, unit(z1), 0.9)
  loss, terms, c_out = tico.tico_loss(jnp.float32(z1), jnp.float32(z2),
                                      jnp.float32(c), **TICO)
  np.testing.assert_allclose(c_out, c_new, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss, np_tico(z1, z2, c_new), rtol=1e-5)
  np.testing.assert_allclose(
      terms['invariance'], 1 - np.mean(np.sum(unit(z1) * unit(z2), 1)),
      rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(terms['covariance'],
                             np_quadratic(unit(z1), c_new), rtol=1e-5)
  # No gradient flows through B: the reference holds C_new constant.
  _check_grads(
      lambda a, b: tico.tico_loss(a, b, jnp.float32(c), **TICO)[0],
      lambda a, b: np_tico(a, b, c_new), z1, z2)


def test_tico_running_covariance_follows_the_recursion():
  rng = np.random.default_rng(5)
  c_np = np.zeros((D, D))
  c_jax = tico.zero_covariance(D)
  assert c_jax.shape == (D, D) and not np.any(c_jax)
  for _ in range(5):
    z1, z2 = rng.normal(size=(N, D)), rng.normal(size=(N, D))
    _, _, c_jax = tico.tico_loss(jnp.float32(z1), jnp.float32(z2), c_jax,
                                 **TICO)
    c_np = 0.9 * c_np + 0.1 * unit(z1).T @ unit(z1) / N
  np.testing.assert_allclose(c_jax, c_np, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('normalize, both',
                         list(itertools.product([True, False], repeat=2)))
def test_hybrid_value_and_gradients(normalize, both):
  z1, z2 = _inputs(3)
  c = _random_c(3)
  nu, beta = 3.0, 0.8
  c_new = hybrid_next_c(c, z1, z2, beta, normalize, both)
  kwargs = dict(sim_coeff=25.0, std_coeff=25.0, nu=nu, beta=beta,
                normalize=normalize, both_branches=both)
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


def test_lookup_binds_the_config_and_rejects_unknown_names(tiny_config_of):
  config = tiny_config_of('tico')
  width = config.model.projector_widths[-1]
  assert methods.make(config).init_state(None).shape == (width, width)
  config = tiny_config_of('vicreg')
  assert methods.make(config).init_state(None) == ()
  config.method.name = 'vicregg'
  with pytest.raises(InputError, match="allowed values.*'tico'.*'vicreg'"):
    methods.check_name(config)


# --- The joint-embedding zoo: Barlow Twins, SimCLR, SimSiam, BYOL. ---

def np_barlow_twins(a, b, lambd=0.0051, scale=0.1):
  """Zbontar et al. 2021, eq. 1, on batch-standardised embeddings."""
  def bn(z):
    return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)
  c = bn(a).T @ bn(b) / len(a)
  on = sum((1 - c[i, i]) ** 2 for i in range(c.shape[0]))
  off = sum(c[i, j] ** 2 for i in range(c.shape[0]) for j in range(c.shape[1])
            if i != j)
  return scale * (on + lambd * off)


def np_nt_xent(a, b, tau):
  """SimCLR Algorithm 1: views 2k-1, 2k are the pair (here rows k, k + N)."""
  z = np.concatenate([a, b])
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n = len(a)
  def ell(i, j):
    denominator = sum(np.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
    return -np.log(np.exp(z[i] @ z[j] / tau) / denominator)
  return sum(ell(k, k + n) + ell(k + n, k) for k in range(n)) / (2 * n)


def np_cos(a, b):
  return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1)
                                  * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize('seed, lambd', [(0, 0.0051), (1, 0.3)])
def test_barlow_twins_value_and_gradients(seed, lambd):
  z1, z2 = _inputs(seed)
  loss, terms = barlow_twins.barlow_twins_loss(
      jnp.float32(z1), jnp.float32(z2), lambd=lambd, scale=0.1)
  np.testing.assert_allclose(loss, np_barlow_twins(z1, z2, lambd), rtol=1e-5)
  np.testing.assert_allclose(
      0.1 * (terms['on_diagonal'] + lambd * terms['off_diagonal']), loss,
      rtol=1e-6)
  _check_grads(
      lambda a, b: barlow_twins.barlow_twins_loss(a, b, lambd=lambd,
                                                  scale=0.1)[0],
      lambda a, b: np_barlow_twins(a, b, lambd), z1, z2)


@pytest.mark.parametrize('seed, tau', [(0, 0.2), (1, 0.5), (2, 1.0)])
def test_nt_xent_value_and_gradients(seed, tau):
  z1, z2 = _inputs(seed)
  loss, terms = simclr.nt_xent(jnp.float32(z1), jnp.float32(z2), tau)
  np.testing.assert_allclose(loss, np_nt_xent(z1, z2, tau), rtol=1e-5)
  assert 0.0 <= terms['contrastive_accuracy'] <= 1.0
  _check_grads(lambda a, b: simclr.nt_xent(a, b, tau)[0],
               lambda a, b: np_nt_xent(a, b, tau), z1, z2)


def test_nt_xent_finds_positives_when_views_agree():
  z1, _ = _inputs(4)
  loss, terms = simclr.nt_xent(jnp.float32(z1), jnp.float32(z1), 0.1)
  assert terms['contrastive_accuracy'] == 1.0
  shuffled, _ = simclr.nt_xent(jnp.float32(z1), jnp.float32(z1[::-1]), 0.1)
  assert loss < shuffled


def _predictor_inputs(seed):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=(N, D)) for _ in range(4)]


def test_simsiam_value_and_stop_gradient():
  p1, p2, z1, z2 = _predictor_inputs(6)
  expected = -(np.mean(np_cos(p1, z2)) + np.mean(np_cos(p2, z1))) / 2
  f = lambda *args: simsiam.simsiam_loss(*args)[0]
  np.testing.assert_allclose(f(*map(jnp.float32, (p1, p2, z1, z2))), expected,
                             rtol=1e-5)
  grads = jax.grad(f, argnums=(0, 1, 2, 3))(*map(jnp.float32, (p1, p2, z1, z2)))
  np.testing.assert_allclose(grads[0], finite_difference_grad(
      lambda x: -(np.mean(np_cos(x, z2)) + np.mean(np_cos(p2, z1))) / 2, p1),
                             rtol=2e-4, atol=2e-5)
  assert not np.any(grads[2]) and not np.any(grads[3])  # Stop-gradient.


def test_byol_value_stop_gradient_and_tau_schedule():
  p1, p2, t1, t2 = _predictor_inputs(7)
  expected = np.mean(2 - 2 * np_cos(p1, t2)) + np.mean(2 - 2 * np_cos(p2, t1))
  f = lambda *args: byol.byol_loss(*args)[0]
  args = tuple(map(jnp.float32, (p1, p2, t1, t2)))
  np.testing.assert_allclose(f(*args), expected, rtol=1e-5)
  grads = jax.grad(f, argnums=(0, 1, 2, 3))(*args)
  np.testing.assert_allclose(grads[1], finite_difference_grad(
      lambda x: np.mean(2 - 2 * np_cos(p1, t2)) + np.mean(2 - 2 * np_cos(x, t1)),
      p2), rtol=2e-4, atol=2e-5)
  assert not np.any(grads[2]) and not np.any(grads[3])
  for progress in (0.0, 0.3, 1.0):
    np.testing.assert_allclose(
        byol.tau_schedule(jnp.float32(progress), 0.99),
        1 - 0.01 * (np.cos(np.pi * progress) + 1) / 2, rtol=1e-6)


def test_predictor_methods_without_a_predictor_say_how_to_fix_it(
    tiny_config_of):
  z = jnp.zeros((N, D))
  outputs = {'z1': z, 'z2': z, 'target_z1': z, 'target_z2': z}
  for name in ('simsiam', 'byol'):
    config = tiny_config_of(name)
    config.model.predictor_widths = ()
    method = methods.make(config)
    state = method.init_state({'encoder': {}, 'projector': {}})
    with pytest.raises(InputError, match='predictor_widths'):
      method.loss(outputs, state)
