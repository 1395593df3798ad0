"""The offline linear evaluation of the SSL papers: a softmax classifier
trained by SGD on frozen features of augmented train images.

The protocol is solo-learn's offline linear evaluation on CIFAR
(`main_linear.py`; its "Offline linear eval" tutorial and its
`classification_dataloader.prepare_transforms`), with DINO's cosine
learning-rate decay (`eval_linear.py`, Caron et al. 2021):
  - a linear layer with bias on the frozen encoder's features, BatchNorm in
    inference mode. The features are fed raw, as both do, not standardised
    as `linear_probe` does: the protocol's learning rate is tuned to raw
    features, and matching the published numbers is this probe's purpose;
  - every epoch a fresh random resized crop (area 0.08-1, aspect 3/4-4/3,
    back to the image's size) and horizontal flip of every train image;
  - SGD, momentum 0.9 without Nesterov, no weight decay, batch 256, 100
    epochs, the last incomplete batch dropped (solo-learn's train loader
    sets drop_last);
  - top-1 accuracy on the un-augmented full test split.
solo-learn steps the learning rate down at epochs 60 and 80; we decay it to
0 along a cosine, as DINO does, per step rather than per epoch.

Unlike `linear_probe`, which fits once on the shared clean features, this
probe encodes the whole train split again every epoch (100 forward passes of
it by default), so it is meant for the end of training on an accelerator,
not for monitoring.
"""
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssljax import augment
from ssljax import data
from ssljax import evaluators
from ssljax import features as features_lib
from ssljax import ranges
from ssljax.errors import InputError
from ssljax.evaluators.linear_probe import accuracy, cross_entropy, predict

# torchvision's RandomResizedCrop aspect ratios, which solo-learn uses.
CROP_RATIO = (3 / 4, 4 / 3)


def default_config() -> ml_collections.ConfigDict:
  """solo-learn's CIFAR-10 offline linear evaluation: SGD with lr 0.1 and
  momentum 0.9, no weight decay, 100 epochs (its tutorial); batch 256 (its
  linear configs); crops of area 0.08-1 (its CIFAR train transform)."""
  return ml_collections.ConfigDict(dict(
      every_epochs=0.0, epochs=100, batch_size=256, learning_rate=0.1,
      momentum=0.9, weight_decay=0.0, crop_scale=(0.08, 1.0)))


# The range of each numeric setting (`ssljax.validate` checks them).
RANGES = {
    'epochs': ranges.AT_LEAST_1, 'batch_size': ranges.AT_LEAST_1,
    'learning_rate': ranges.POSITIVE, 'momentum': ranges.DECAY,
    'weight_decay': ranges.AT_LEAST_0, 'crop_scale': ranges.FRACTION}

# What each setting of default_config() means (--show_config).
HELP = {
    'epochs': 'epochs of SGD over the train split, fresh crops each',
    'batch_size': 'images per SGD step',
    'learning_rate': 'peak learning rate (cosine decay)',
    'momentum': "SGD's momentum",
    'weight_decay': 'L2 weight decay of the classifier',
    'crop_scale': 'area range of the random resized crops',
}


def _crop_and_flip(key, image, scale):
  """One float image in [0, 1] randomly resized-cropped back to its own size
  and flipped left-right with probability 1/2."""
  crop_key, flip_key = jax.random.split(key)
  view = augment.random_resized_crop(crop_key, image, image.shape[0], scale,
                                     CROP_RATIO)
  return augment.random_flip(flip_key, view[None])[0]


@functools.partial(jax.jit, static_argnames=('scale',))
def augmented_views(key, images, indices, *, scale):
  """uint8 images [B, H, W, 3] -> their float32 crop-and-flip views in
  [0, 1]. Each image's randomness is keyed by its index in the split, so the
  views do not depend on how the split is batched."""
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
  return jax.vmap(_crop_and_flip, in_axes=(0, 0, None))(
      keys, data.to_unit_range(images), scale)


def augmented_features(encode: Callable[[jax.Array], np.ndarray],
                       images: np.ndarray, key: jax.Array, *,
                       scale: tuple[float, float], batch_size: int
                       ) -> np.ndarray:
  """The features [N, F] of one crop-and-flip view of each uint8 image,
  `batch_size` images per call of `encode`. `features.in_batches` batches
  the indices of the images; the padding indices (0) are encoded and
  dropped."""
  def encode_indices(indices):
    return encode(augmented_views(key, images[indices], indices, scale=scale))
  return features_lib.in_batches(encode_indices, np.arange(len(images)),
                                 batch_size)


def sgd(learning_rate: float, momentum: float, weight_decay: float,
        total_steps: int) -> optax.GradientTransformation:
  """PyTorch's SGD (momentum without dampening or Nesterov, weight decay
  added to the gradient), its learning rate cosine-decayed to 0 over
  `total_steps`."""
  schedule = optax.cosine_decay_schedule(learning_rate, total_steps)
  return optax.chain(optax.add_decayed_weights(weight_decay),
                     optax.sgd(schedule, momentum=momentum))


@functools.partial(jax.jit, static_argnames=('batch_size', 'optimizer'))
def sgd_epoch(params, opt_state, x, labels, key, *, batch_size: int,
              optimizer: optax.GradientTransformation):
  """One epoch of minibatch SGD on the cross-entropy of the linear layer
  over the features `x` [N, F]: the rows shuffled by `key`, the last
  incomplete batch dropped. Returns the new params and optimizer state and
  the epoch's mean minibatch loss. The optimizer is static: one compilation
  per `sgd` object, i.e. per probe run."""
  num_steps = x.shape[0] // batch_size
  order = jax.random.permutation(key, x.shape[0])[:num_steps * batch_size]

  def step(carry, batch):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(
        lambda p: cross_entropy(predict(p, x[batch]), labels[batch]))(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, opt_state), losses = jax.lax.scan(
      step, (params, opt_state), order.reshape(num_steps, batch_size))
  return params, opt_state, jnp.mean(losses)


def sgd_probe(epoch_features: Callable[[int], np.ndarray],
              train_labels: np.ndarray, test_features: np.ndarray,
              test_labels: np.ndarray, *, epochs: int, batch_size: int,
              learning_rate: float, momentum: float, weight_decay: float,
              key: jax.Array) -> dict:
  """Trains the linear layer for `epochs` epochs, epoch e on the train
  features `epoch_features(e)` [N, F] in an order drawn from `key`, and
  returns its test accuracy, its accuracy and mean loss on the last epoch's
  train features, and timings.

  The weights start at zero: the objective is convex, so the start matters
  only through the finite number of steps, and zero draws no randomness."""
  start = time.time()
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  optimizer = sgd(learning_rate, momentum, weight_decay,
                  epochs * (len(train_labels) // batch_size))
  params = {'w': jnp.zeros((test_features.shape[1], num_classes)),
            'b': jnp.zeros((num_classes,))}
  opt_state = optimizer.init(params)
  labels = jnp.asarray(train_labels)
  for epoch in range(epochs):
    x = jnp.asarray(epoch_features(epoch))
    params, opt_state, loss = sgd_epoch(
        params, opt_state, x, labels, jax.random.fold_in(key, epoch),
        batch_size=batch_size, optimizer=optimizer)
  seconds = time.time() - start
  return {
      'test_accuracy': float(accuracy(
          predict(params, jnp.asarray(test_features)), test_labels)),
      'train_accuracy': float(accuracy(predict(params, x), labels)),
      'train_loss': float(loss),
      'epochs': epochs,
      'seconds': seconds,
      'seconds_per_epoch': seconds / epochs,
  }


def make(eval_config: ml_collections.ConfigDict,
         config: ml_collections.ConfigDict) -> evaluators.Evaluator:
  scale = tuple(float(s) for s in eval_config.crop_scale)
  if len(scale) != 2 or scale[0] > scale[1]:
    raise InputError(
        f'config.evals.sgd_probe.crop_scale={scale} must be two area '
        'fractions, low <= high (the protocol: (0.08, 1.0)).')

  def run(features: evaluators.Features) -> dict:
    num_train = len(features.train_labels)
    if eval_config.batch_size > num_train:
      raise InputError(
          f'config.evals.sgd_probe.batch_size={eval_config.batch_size} is '
          f'larger than the train split ({num_train} images); lower it.')
    crop_key, order_key = jax.random.split(jax.random.PRNGKey(config.seed))
    epoch_features = lambda epoch: augmented_features(
        features.encode, features.train_images,
        jax.random.fold_in(crop_key, epoch), scale=scale,
        batch_size=config.eval_batch_size)
    result = sgd_probe(
        epoch_features, features.train_labels, features.test,
        features.test_labels, epochs=eval_config.epochs,
        batch_size=eval_config.batch_size,
        learning_rate=eval_config.learning_rate,
        momentum=eval_config.momentum,
        weight_decay=eval_config.weight_decay, key=order_key)
    result['learning_rate'] = eval_config.learning_rate
    result['batch_size'] = eval_config.batch_size
    return result

  return evaluators.Evaluator(run=run, summary={
      'sgd_probe_accuracy': 'test_accuracy'})
