"""The tap-wise kernel gradient of `models.conv` is the convolution's kernel
gradient, against the formula in float64 NumPy; a whole ResNet's gradients
through `models.conv` (Winograd, patches, taps) equal those through XLA's
convolutions; a layer chooses its formulation from its shapes, dtypes, the
platform and the formulations allowed alone, the same eagerly as under
`jit`."""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import conv
from ssljax.models import patches
from ssljax.models import resnet
from ssljax.models import winograd

NHWC = ('NHWC', 'HWIO', 'NHWC')


def _kernel_grad_numpy(x, grad, kh, kw, stride, pads):
  """dL/dW[i, j, c, o] = sum over n, p, q of
  x_padded[n, stride p + i, stride q + j, c] * grad[n, p, q, o]."""
  x = np.pad(np.float64(x), ((0, 0), pads[0], pads[1], (0, 0)))
  grad = np.float64(grad)
  n, oh, ow, _ = grad.shape
  out = np.zeros((kh, kw, x.shape[-1], grad.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      for p in range(oh):
        for q in range(ow):
          out[i, j] += x[:, stride * p + i, stride * q + j, :].T @ grad[:, p, q, :]
  return out


@pytest.mark.parametrize('kernel,stride,size', [(3, 1, 6), (3, 2, 6),
                                                (3, 2, 7), (1, 2, 6)])
def test_kernel_grad_by_taps_matches_the_formula(kernel, stride, size):
  rng = np.random.default_rng(kernel * 10 + stride + size)
  x = rng.normal(size=(3, size, size, 4)).astype(np.float32)
  pads = lax.padtype_to_pads((size, size), (kernel, kernel),
                             (stride, stride), 'SAME')
  out_size = -(-size // stride)
  grad = rng.normal(size=(3, out_size, out_size, 5)).astype(np.float32)
  ours = conv.kernel_grad_by_taps(jnp.asarray(x), jnp.asarray(grad),
                                  (kernel, kernel, 4, 5), (stride, stride),
                                  pads)
  np.testing.assert_allclose(
      ours, _kernel_grad_numpy(x, grad, kernel, kernel, stride, pads),
      rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # 13 s: a width-1 ResNet's gradient, compiled twice.
def test_resnet_gradients_equal_those_of_xla_convolutions(monkeypatch):
  # Width 1 at 32x32 puts layers on each path: Winograd (3x3 stride 1, 64
  # channels or more), patches (strided 3x3) and the taps (1x1); 16 images
  # give each of those MIN_FLOPS, and leave the stem to XLA. BatchNorm runs on its running averages:
  # with batch statistics over 4 images the gradient is so ill-conditioned
  # that XLA's own float32 gradient strays 4e-2 from the float64 one, and
  # any change of summation order moves it as much.
  # ReLU's kink would turn a rounding difference at a pre-activation near 0
  # into a different gradient (measured: up to 3e-3 of a leaf, whichever two
  # float32 formulations are compared); GELU is smooth there.
  monkeypatch.setattr(resnet.nn, 'relu', jax.nn.gelu)
  x = jax.random.normal(jax.random.PRNGKey(0), (16, 32, 32, 3))
  # ResNet-18's layer shapes, one block per stage (half the compile time).
  model = resnet.ResNet((1, 1, 1, 1), resnet.BasicBlock, width=1.0)
  variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(1), x,
                                           train=True))(x)

  def grads(model):
    def loss(params):
      h = model.apply({**variables, 'params': params}, x, train=False)
      return jnp.sum(jnp.sin(h))
    return jax.jit(jax.grad(loss))(variables['params'])

  calls = []
  for module, name in ((conv, 'conv_with_taps'), (winograd, 'conv3x3'),
                       (patches, 'conv_by_patches')):
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, name=name, f=original: (
        calls.append(name), f(*a))[1])
  ours = grads(model)
  assert calls.count('conv_with_taps') == 3  # The 1x1 ones.
  assert calls.count('conv3x3') == 5  # The 3x3 stride-1 ones but the stem.
  assert calls.count('conv_by_patches') == 3  # The strided 3x3 ones.
  del calls[:]
  # The same parameters, XLA's convolutions and gradients throughout.
  theirs = grads(model.clone(convolution=lax.conv_general_dilated))
  assert not calls
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(
        jnp.abs(b).max()))
  # Some formulations only, by name; none: XLA's convolution throughout.
  jax.eval_shape(jax.grad(lambda p: jnp.sum(model.clone(
      convolution=conv.using('taps', 'patches')).apply(
          {**variables, 'params': p}, x, train=False))), variables['params'])
  assert 'conv3x3' not in calls  # Its layers of 16x16 or more: the taps.
  assert calls.count('conv_with_taps') == 3 + 3
  assert calls.count('conv_by_patches') == 3
  del calls[:]
  jax.eval_shape(lambda p: model.clone(convolution=conv.using()).apply(
      {**variables, 'params': p}, x, train=False), variables['params'])
  assert not calls
  with pytest.raises(ValueError, match='winogard'):
    conv.using('winogard')
  with pytest.raises(TypeError, match='one string'):
    conv.conv_general_dilated(x, variables['params']['Conv_0']['kernel'],
                              (1, 1), 'SAME', formulations='taps')


# (input shape, kernel shape, stride) of a layer on each formulation's side
# of every threshold, in float32: 32 images of 16x16x64 and a 3x3 64 -> 64
# kernel at stride 1 (Winograd; 0.60 GFLOP, MIN_FLOPS or more), the same
# at stride 2 from 32x32 (the patches; 0.60 GFLOP) and a 1x1 (the taps).
LAYERS = {'winograd': ((32, 16, 16, 64), (3, 3, 64, 64), 1),
          'patches': ((32, 32, 32, 64), (3, 3, 64, 64), 2),
          'taps': ((32, 16, 16, 64), (1, 1, 64, 64), 1)}
RULES = {'winograd': lambda x, k, s, dims, **kw: conv.winograd_plan(
             x, k, (s, s), 'SAME', None, None, dims, 1, **kw),
         'patches': lambda x, k, s, dims, **kw: conv.patches_chunk(
             x, k, (s, s), None, None, dims, 1, **kw),
         'taps': lambda x, k, s, dims, **kw: conv.taps_are_faster(
             x, k, (s, s), None, None, dims, 1, **kw)}


@pytest.mark.parametrize('name', sorted(LAYERS))
def test_a_layer_chooses_its_formulation_eagerly_as_under_jit(name,
                                                              monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
  x_shape, k_shape, s = LAYERS[name]
  x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
  kernel = jax.random.normal(jax.random.PRNGKey(1), k_shape) * 0.05
  dims = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
  rule = RULES[name]
  traced = []
  jax.jit(lambda x, k: traced.append(rule(x, k, s, dims)) or x)(x, kernel)
  eager = rule(x, kernel, s, dims)  # On concrete arrays.
  assert eager and eager == traced[0]
  # The choice is among the formulations allowed, and only those.
  others = tuple(f for f in conv.FORMULATIONS if f != name)
  assert not rule(x, kernel, s, dims, formulations=others)
  assert rule(x, kernel, s, dims, formulations=(name,)) == eager


def test_a_winograd_layer_computes_eagerly_what_it_computes_under_jit(
    monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
  x_shape, k_shape, _ = LAYERS['winograd']
  x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
  kernel = jax.random.normal(jax.random.PRNGKey(1), k_shape) * 0.05
  dims = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
  calls = []
  original = winograd.conv3x3
  monkeypatch.setattr(winograd, 'conv3x3', lambda *a: (
      calls.append(a[2:4]), original(*a))[1])

  def layer(x, kernel):
    return conv.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                     dimension_numbers=dims)
  eager, jitted = layer(x, kernel), jax.jit(layer)(x, kernel)
  assert calls == [(2, 32), (2, 32)]  # Winograd both times, one plan.
  np.testing.assert_allclose(eager, jitted, rtol=0,
                             atol=1e-5 * float(jnp.abs(jitted).max()))
