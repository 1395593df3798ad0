"""What the evaluators and the training loop's collapse watch see of a train
state: its encoder's features, extracted over the mesh, and the collapse
measures (`ssljax.collapse`) of its representations on held-out views.

`encoder(config, mesh, train_info)` binds the model and method of a config
for this alone, as `step.build` binds them for training: an evaluator gets
functions of images bound to the evaluated state (`evaluators.Features`),
never the train step.
"""
import dataclasses
import functools
from typing import Callable

import jax
from jax.sharding import Mesh
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax import augment
from ssljax import collapse
from ssljax import data
from ssljax import hosts
from ssljax import methods
from ssljax import models

# A readout: a hashable function of the encoder's stage maps {'stage1':
# [N, H, W, C], ...} (`evaluators.multiscale_probe.RegionPooling`).
Readout = Callable[[dict], jax.Array]


def in_batches(encode: Callable[[np.ndarray], jax.Array], images: np.ndarray,
               batch_size: int) -> np.ndarray:
  """Applies `encode` batch by batch; the last batch is padded so that
  `encode` compiles once, and the padding is dropped."""
  found = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    padded = np.concatenate(
        [batch, np.zeros((batch_size - len(batch),) + batch.shape[1:],
                         batch.dtype)])
    found.append(np.asarray(encode(padded), np.float32)[:len(batch)])
  return np.concatenate(found)


@dataclasses.dataclass(frozen=True, eq=False)
class Encoder:
  """The encoder of a config's model, its inputs standardised with the train
  split's statistics, over a mesh; see `encoder`."""
  model: models.SSLModel
  method: methods.Method
  train_info: data.SplitInfo
  mesh: Mesh
  seed: int
  image_size: int  # Of the training views: the held-out views' size.
  batch_size: int  # Images per call of the extraction.

  def features(self, variables, images: jax.Array,
               readout: Readout | None = None) -> jax.Array:
    """Encoder features of images, uint8 or float in [0, 1] (augmented
    views), BatchNorm in inference mode: the encoder's output or, with
    `readout`, what it makes of the encoder's stage maps."""
    if images.dtype == jnp.uint8:
      images = data.to_unit_range(images)
    x = data.standardize_channels(images, self.train_info)
    if readout is None:
      return self.model.apply(variables, x, method=models.SSLModel.features)
    _, sown = self.model.apply(variables, x, method=models.SSLModel.features,
                               mutable=['intermediates'])
    return readout({name: maps[0] for name, maps
                    in sown['intermediates']['encoder'].items()})

  @functools.cached_property
  def jitted_features(self):
    """`features` jitted, the images split over the mesh."""
    return jax.jit(self.features, static_argnums=2, in_shardings=(
        hosts.replicated(self.mesh), hosts.split_rows(self.mesh)))

  def host_features(self, variables, images,
                    readout: Readout | None = None) -> np.ndarray:
    """`features` of a batch every process holds whole, computed over the
    mesh, each process giving its own rows: the features of the whole
    batch, on every process."""
    # `readout` by position: jit takes no keywords with in_shardings.
    rows = hosts.global_array(hosts.split_rows(self.mesh), np.asarray(images))
    return hosts.to_host(self.jitted_features(variables, rows, readout))

  def extract(self, state, images: np.ndarray,
              readout: Readout | None = None) -> np.ndarray:
    """The features of `state` of `images`, `batch_size` at a time."""
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    return in_batches(functools.partial(self.host_features, variables,
                                        readout=readout),
                      images, self.batch_size)

  def views(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two views of each uint8 held-out image, what `collapse_measures`
    sees: the standard SSL augmentation (`augment.default_config`) at the
    training image size, whatever the method's own, so that alignment
    compares methods on the same pairs; drawn from the run's seed, so that
    they are made once and every log sees the same pairs."""
    pairs = augment.default_config()
    pairs.image_size = self.image_size
    return augment.views(jax.random.PRNGKey(self.seed),
                         data.to_unit_range(images), pairs)

  @functools.cached_property
  def jitted_views(self):
    """`views` jitted, the images split over the mesh."""
    return jax.jit(self.views, in_shardings=hosts.split_rows(self.mesh),
                   out_shardings=hosts.split_rows(self.mesh))

  def held_out_views(self, images: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """`views` of uint8 held-out images that every process holds whole,
    each process giving its own rows."""
    return self.jitted_views(
        hosts.global_array(hosts.split_rows(self.mesh), images))

  def collapse_measures(self, state, views: tuple[jax.Array, jax.Array]
                        ) -> dict[str, jax.Array]:
    """The collapse measures of `state` on the two `views` of held-out
    images: the spread, RankMe and singular values of the first views'
    encoder features ('feature_*') and, where the head sees one input per
    image, of the head's outputs ('embedding_*'); the alignment and
    uniformity of the features of both views; and the method state's own
    measures. Measuring the spread on the views too keeps the cost at two
    encoder passes over the batch.

    BatchNorm normalises with the statistics of the held-out batch (and
    keeps none), as the loss sees the network: the running averages that
    inference uses lag behind training, and early on they make a healthy
    network look collapsed.
    """
    variables = {'params': state.params, 'batch_stats': state.batch_stats}

    def encode(images):  # One feature vector per image, whatever the head.
      x = data.standardize_channels(images, self.train_info)
      h, _ = self.model.apply(variables, x, train=True, head_groups=1,
                              mutable=['batch_stats'],
                              method=models.SSLModel.encode)
      return h.astype(jnp.float32)  # Statistics in float32, as the losses.

    h1, h2 = encode(views[0]), encode(views[1])
    measures = collapse.spread(h1, 'feature')
    if self.method.head_groups == 1:
      (z, _), _ = self.model.apply(variables, h1, train=True,
                                   mutable=['batch_stats'],
                                   method=models.SSLModel.heads)
      measures.update(collapse.spread(z.astype(jnp.float32), 'embedding'))
    measures['alignment'] = collapse.alignment(h1, h2)
    measures['uniformity'] = (collapse.uniformity(h1)
                              + collapse.uniformity(h2)) / 2
    measures.update(self.method.state_diagnostics(state.method_state))
    return measures

  @functools.cached_property
  def jitted_collapse_measures(self):
    """`collapse_measures` jitted, the views split over the mesh."""
    whole = hosts.replicated(self.mesh)
    return jax.jit(self.collapse_measures, out_shardings=whole,
                   in_shardings=(whole, hosts.split_rows(self.mesh)))

  def measure(self, state, views) -> dict[str, np.ndarray]:
    """`collapse_measures` on the host."""
    return jax.device_get(self.jitted_collapse_measures(state, views))


def encoder(config: ml_collections.ConfigDict, mesh: Mesh,
            train_info: data.SplitInfo) -> Encoder:
  """The encoder of `config` (checked by `validate.check`) on `mesh`."""
  return Encoder(
      model=models.create_model(config, train_info.num_classes),
      method=methods.make(config), train_info=train_info, mesh=mesh,
      seed=config.seed, image_size=config.augment.image_size,
      batch_size=config.eval_batch_size)
