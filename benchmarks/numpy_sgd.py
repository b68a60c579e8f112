"""Per-example SGD of MF with biases in plain numpy: the speed baseline.

This is how the paper's reference code trains (google-research
dot_vs_learned_similarity/mf_simple.py): a Python loop over a shuffled array
of (user, item, label) rows, one iteration and a few numpy row operations per
example. The update rules are those of App. A.1 and dot_vs_learned.train,
applied strictly in stream order (the global bias included), with
g = y - sigmoid(score):
  p_u <- p_u + eta * (g * [1, q_i,2..d] - lambda * p_u)
  q_i <- q_i + eta * (g * [1, p_u,2..d] - lambda * q_i)   (old p_u)
  b   <- b   + eta * (g - lambda * b)
The parameter layout is that of dot_vs_learned.models.MFParams: column 0 of a
row is its bias.
"""

import math

import numpy as np


def make_examples(train_users, train_items, num_items, num_negatives, rng):
  """One epoch's shuffled (users, items, labels), as dot_vs_learned.train.

  Each training positive appears once with label 1, with `num_negatives`
  examples of its user labelled 0 whose items are uniform over all items
  (fresh every call; one may be a positive of the user). `rng` is a
  np.random.Generator.
  """
  per = 1 + num_negatives
  users = np.repeat(np.asarray(train_users, np.int32), per)
  items_NxK = rng.integers(0, num_items, (len(train_users), per),
                           dtype=np.int32)
  items_NxK[:, 0] = train_items
  labels_NxK = np.zeros(items_NxK.shape, np.float32)
  labels_NxK[:, 0] = 1.0
  order = rng.permutation(users.shape[0])
  return users[order], items_NxK.reshape(-1)[order], labels_NxK.reshape(-1)[
      order]


def _sigmoid(x):
  """Logistic function that never overflows math.exp."""
  if x >= 0:
    return 1.0 / (1.0 + math.exp(-x))
  e = math.exp(x)
  return e / (1.0 + e)


def sgd_epoch(user, item, bias, users, items, labels, learning_rate, reg):
  """Applies the examples one by one; updates `user` and `item` in place.

  Args:
    user, item: float arrays [U, d] and [I, d], column 0 the biases.
    bias: the global bias b.
    users, items, labels: the examples, in the order to apply them.
    learning_rate, reg: eta and lambda of App. A.1.

  Returns:
    The updated global bias, of `user`'s dtype.
  """
  eta = learning_rate
  bias = user.dtype.type(bias)
  for u, i, y in zip(users.tolist(), items.tolist(), labels.tolist()):
    p, q = user[u], item[i]  # views: += below writes into the tables
    g = y - _sigmoid(float(bias + p[0] + q[0] + p[1:] @ q[1:]))
    # d score / d p_u = [1, q_i,2..d]: the bias column sees a constant 1.
    grad_p = q.copy()
    grad_p[0] = 1.0
    grad_q = p.copy()  # taken before p changes: simultaneous update
    grad_q[0] = 1.0
    p += eta * (g * grad_p - reg * p)
    q += eta * (g * grad_q - reg * q)
    bias += eta * (g - reg * bias)
  return bias
