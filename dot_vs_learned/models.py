"""Similarity models: MF with biases (Eq. 2), GMF, MLP, NeuMF and popularity,
and the parameters of the dot-product baselines iALS (ials.py) and EASE^R
(ease.py).

Dimension convention (paper Eq. 2 and App. A.1): the embedding dimension `d`
counts the bias. A user row is `[p_1, p_2..p_d]` where `p_1` is the user bias
and `p_2..p_d` are the d-1 factors; likewise for items. The global bias `b` is
one extra scalar. So `d = 64` means 63 factors plus a bias per side, as in the
paper's reference code (`--embedding_dim`: "the first dimension will be used
for the bias").
"""

from typing import NamedTuple, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# NCF (He et al. 2017, §4.1): embeddings start from N(0, 0.01^2).
EMBED_INIT = nn.initializers.normal(stddev=0.01)


class MFParams(NamedTuple):
  user: jax.Array  # [U, d]: column 0 user bias, columns 1.. factors.
  item: jax.Array  # [I, d]: column 0 item bias, columns 1.. factors.
  bias: jax.Array  # []: global bias b.


class DotParams(NamedTuple):
  """iALS's factors: score <p_u, q_i>, no bias (all d columns are factors)."""
  user: jax.Array  # [U, d]
  item: jax.Array  # [I, d]


class EaseParams(NamedTuple):
  """EASE^R: score x_u . B[:, i]; the history X is the training data.

  With P = (G + lambda I)^-1 symmetric, B[j, i] = B^T[j, i] diag_j / diag_i
  (j != i; both diagonals are 0): a user's scores of every item read only
  the rows of B^T at the user's history (full_ranking.py). `diag` is None
  in files written before it was saved; such parameters score densely.
  """
  weights_t: jax.Array  # B^T [I, I], zero diagonal: row i = column i of B
  history: jax.Array  # X [U, I] float32, 1 where the user has the item
  diag: Optional[jax.Array] = None  # [I] diag(P), each > 0


# Prefixes of the NamedTuple parameters in params.npz (EASE^R's history is
# rebuilt from the data, not saved).
_PREFIXES = {MFParams: "mf", DotParams: "ials", EaseParams: "ease"}


def init_mf(key, num_users, num_items, dim, stddev) -> MFParams:
  """Factors ~ N(0, stddev^2); biases start at zero as in the reference code."""
  key_u, key_i = jax.random.split(key)
  user = stddev * jax.random.normal(key_u, (num_users, dim), jnp.float32)
  item = stddev * jax.random.normal(key_i, (num_items, dim), jnp.float32)
  return MFParams(user.at[:, 0].set(0.0), item.at[:, 0].set(0.0),
                  jnp.zeros((), jnp.float32))


def with_unit_bias(emb_BxD) -> jax.Array:
  """Rows with the bias column replaced by 1: [1, q_2..q_d].

  It is d score / d p for Eq. 2, and <p, [1, q_2..q_d]> = p_1 + <p_2.., q_2..>.
  """
  column_D = jnp.arange(emb_BxD.shape[-1])
  return jnp.where(column_D == 0, 1.0, emb_BxD)


def row_sums(x_BxD) -> jax.Array:
  """Sums over the last axis, as a product with a vector of ones.

  XLA:CPU (JAX 0.10.2) runs a reduction over the minor axis as a YNNPACK
  fusion about 3x slower than this matrix-vector product (README,
  Benchmarks); HIGHEST keeps float32 on GPUs and TPUs, whose default matmul
  rounds its inputs.
  """
  x_BxD = jnp.asarray(x_BxD)
  ones_D = jnp.ones((x_BxD.shape[-1],), x_BxD.dtype)
  return jnp.matmul(x_BxD, ones_D, precision=jax.lax.Precision.HIGHEST)


def mf_logits(emb_u_BxD, emb_i_BxD, bias) -> jax.Array:
  """Eq. 2 on gathered rows: b + p_1 + q_1 + <p_[2..d], q_[2..d]>."""
  return bias + emb_i_BxD[..., 0] + row_sums(emb_u_BxD *
                                             with_unit_bias(emb_i_BxD))


def logistic_loss(logits, labels) -> jax.Array:
  """-y log sigmoid(s) - (1 - y) log(1 - sigmoid(s)), stably (App. A.1)."""
  return jax.nn.softplus(logits) - labels * logits


def mf_score(params: MFParams, users, items) -> jax.Array:
  """Eq. 2 for arrays of user and item ids of the same shape."""
  return mf_logits(params.user[users], params.item[items], params.bias)


def popularity_counts(train_items, num_items) -> np.ndarray:
  """Number of training interactions of each item: the popularity model."""
  return np.bincount(train_items, minlength=num_items).astype(np.float32)


def popularity_score(counts_I, users, items) -> jax.Array:
  """Popularity ignores the user: the score of an item is its count."""
  del users
  return counts_I[items]


# Learned similarities of NCF (paper Eq. 4-7). Each maps (users, items) of any
# shape to logits of that shape; `features` gives the last hidden vector,
# which NeuMF concatenates. `dim` is the embedding dimension d per side.


class GMF(nn.Module):
  """Eq. 7: w^T (p * q) + bias, with learned w."""
  num_users: int
  num_items: int
  dim: int

  def setup(self):
    self.user = nn.Embed(self.num_users, self.dim, embedding_init=EMBED_INIT)
    self.item = nn.Embed(self.num_items, self.dim, embedding_init=EMBED_INIT)
    self.out = nn.Dense(1)

  def features(self, users, items):
    return self.user(users) * self.item(items)

  def __call__(self, users, items):
    return self.out(self.features(users, items))[..., 0]


class MLP(nn.Module):
  """Eq. 5-6: [p, q] -> ReLU layers of sizes `hidden` -> a linear logit."""
  num_users: int
  num_items: int
  dim: int
  hidden: Sequence[int]

  def setup(self):
    self.user = nn.Embed(self.num_users, self.dim, embedding_init=EMBED_INIT)
    self.item = nn.Embed(self.num_items, self.dim, embedding_init=EMBED_INIT)
    self.layers = [nn.Dense(size) for size in self.hidden]
    self.out = nn.Dense(1)

  def features(self, users, items):
    x = jnp.concatenate([self.user(users), self.item(items)], axis=-1)
    for layer in self.layers:
      x = nn.relu(layer(x))
    return x

  def __call__(self, users, items):
    return self.out(self.features(users, items))[..., 0]


class NeuMF(nn.Module):
  """NCF §3.4: GMF on its own embeddings and an MLP on others, one output."""
  num_users: int
  num_items: int
  gmf_dim: int
  mlp_dim: int
  hidden: Sequence[int]

  def setup(self):
    self.gmf = GMF(self.num_users, self.num_items, self.gmf_dim)
    self.mlp = MLP(self.num_users, self.num_items, self.mlp_dim, self.hidden)
    self.out = nn.Dense(1)

  def __call__(self, users, items):
    x = jnp.concatenate([self.gmf.features(users, items),
                         self.mlp.features(users, items)], axis=-1)
    return self.out(x)[..., 0]


def ncf_mlp3(num_users, num_items, factor) -> MLP:
  """NCF's 3-layer MLP for predictive factor k: d = 2k, layers [4k, 2k, k]."""
  return MLP(num_users, num_items, 2 * factor,
             (4 * factor, 2 * factor, factor))


def ncf_neumf(num_users, num_items, factor) -> NeuMF:
  """NCF's NeuMF for predictive factor k: GMF k + MLP 2k per side, d = 3k."""
  return NeuMF(num_users, num_items, factor, 2 * factor,
               (4 * factor, 2 * factor, factor))


def neumf_from_pretrained(gmf_params, mlp_params, alpha=0.5) -> dict:
  """NCF §3.4.1: NeuMF parameters from trained GMF and MLP parameters.

  Embeddings and hidden layers are copied; the output layer is the two output
  layers stacked, weighted alpha (GMF) and 1 - alpha (MLP).
  """
  gmf, mlp = gmf_params["params"], mlp_params["params"]
  strip = lambda tree: {k: v for k, v in tree.items() if k != "out"}
  kernel = jnp.concatenate([alpha * gmf["out"]["kernel"],
                            (1 - alpha) * mlp["out"]["kernel"]], axis=0)
  bias = alpha * gmf["out"]["bias"] + (1 - alpha) * mlp["out"]["bias"]
  return {"params": {"gmf": strip(gmf), "mlp": strip(mlp),
                     "out": {"kernel": kernel, "bias": bias}}}


def count_params(params) -> int:
  """Number of scalars in a parameter pytree."""
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def flatten_params(params) -> dict[str, np.ndarray]:
  """{"/"-joined path: array}, for files; MF paths start with "mf/", iALS's
  with "ials/", EASE^R's ("ease/weights_t" and "ease/diag", not its
  history) with "ease/"."""
  if type(params) in _PREFIXES:
    prefix = _PREFIXES[type(params)]
    return {f"{prefix}/{name}": np.asarray(value)
            for name, value in params._asdict().items()
            if value is not None and not (prefix == "ease"
                                          and name == "history")}
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  return {name: np.asarray(value) for name, value in flat.items()}


def unflatten_params(flat):
  """Inverse of flatten_params; EASE^R's history comes back as None."""
  for kind, prefix in _PREFIXES.items():
    if any(name.startswith(f"{prefix}/") for name in flat):
      fields = {name[len(prefix) + 1:]: jnp.asarray(value)
                for name, value in flat.items()}
      return kind(**({"history": None} if kind is EaseParams else {}),
                  **fields)
  return flax.traverse_util.unflatten_dict(
      {name: jnp.asarray(value) for name, value in flat.items()}, sep="/")


def ncf_hidden(model_config) -> tuple[int, ...]:
  """The MLP tower's layer sizes: model.hidden, or NCF's rule (App. A.3).

  The 3-layer tower halves each layer: [2d, d, d/2] for the MLP of
  embedding d = 2k, and [4k, 2k, k] for NeuMF's MLP part of d = 3k.
  """
  if model_config.hidden:
    return tuple(model_config.hidden)
  dim = model_config.dim
  if model_config.name == "mlp":
    return (2 * dim, dim, dim // 2)
  k = dim // 3
  return (4 * k, 2 * k, k)


def make_model(config, num_users, num_items):
  """Returns init(key, stddev=None) -> params and score(params, users, items).

  `stddev` (MF only; may be traced, e.g. swept) overrides
  config.train.init_stddev; the flax models start from N(0, 0.01^2) (NCF).
  """
  name, dim = config.model.name, config.model.dim
  if name == "mf":
    def init(key, stddev=None):
      return init_mf(key, num_users, num_items, dim,
                     config.train.init_stddev if stddev is None else stddev)
    return init, mf_score
  if name == "gmf":
    module = GMF(num_users, num_items, dim)
  elif name == "mlp":
    module = MLP(num_users, num_items, dim, ncf_hidden(config.model))
  else:  # "neumf": GMF on d/3, the MLP on 2d/3 (NCF's split, d = 3k).
    k = dim // 3
    module = NeuMF(num_users, num_items, k, 2 * k, ncf_hidden(config.model))
  ids = jnp.zeros((1,), jnp.int32)
  return (lambda key, stddev=None: module.init(key, ids, ids)), module.apply
