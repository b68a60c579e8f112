"""The NCF experiment's config: defaults, NCF's recipe, and validation.

Every config value out of range raises ConfigError naming the field, before
anything is read or written; validate_sizes checks what the data and the
config need together (cut-offs, the stream's int32 positions, memory).
"""

import math

from dot_vs_learned import checks

MODELS = ("mf", "gmf", "mlp", "neumf", "neumf_pretrained", "popularity",
          "ials", "ease")
CLOSED_FORM = ("popularity", "ease")  # no epochs, no seeds: one fit
SOLVED = ("mf", "popularity", "ials", "ease")  # no gradient optimizer
TOWERED = ("mlp", "neumf", "neumf_pretrained")  # an MLP tower of model.hidden
GENERATED_NEGATIVES = 99  # per user in the generated data (datasets.py)
FORMATS = ("ncf", "lists")  # data.format: NCF files, or item lists
OPTIMIZERS = ("exact", "batched", "adam", "lazy_adam", "sgd")
# Those that train any model.
GRADIENT_OPTIMIZERS = ("adam", "lazy_adam", "sgd")

MAX_EPOCHS = 100_000  # a bound on typos: App. A.2's longest run is 256
MAX_SEED = 2**31 - 1  # jax.random.key keeps 32 bits of larger seeds

ConfigError = checks.ConfigError
_check = checks.check


def validate(config, num_candidates=None) -> None:
  """Raises ConfigError naming the first config field out of range."""
  m, t, e = config.model, config.train, config.eval
  _check(m.name in MODELS, "model.name", m.name, f"must be one of {MODELS}")
  _check(t.optimizer in OPTIMIZERS, "train.optimizer", t.optimizer,
         f"must be one of {OPTIMIZERS}")
  # d counts the bias (Eq. 2), so one factor needs d = 2.
  _check(m.dim >= 2, "model.dim", m.dim, "must be >= 2 (bias + factors)")
  _check(m.name in SOLVED or t.optimizer in GRADIENT_OPTIMIZERS,
         "train.optimizer", t.optimizer, f"{m.name} trains with "
         f"{GRADIENT_OPTIMIZERS} only (use --config=configs/<dataset>.py:"
         f"{m.name} for its recipe)")
  if m.name == "mlp" and not m.hidden:
    _check(m.dim % 2 == 0, "model.dim", m.dim, "mlp: must be even (d = 2k)")
  if m.name in ("neumf", "neumf_pretrained"):
    _check(m.dim % 3 == 0, "model.dim", m.dim,
           "neumf: must be a multiple of 3 (GMF k + MLP 2k, d = 3k)")
  _check(all(checks.is_whole(h) and h >= 1 for h in m.hidden),
         "model.hidden", m.hidden, "layer sizes must be whole numbers >= 1")
  _check(t.l2_weights >= 0, "train.l2_weights", t.l2_weights, "must be >= 0")
  p = config.pretrain
  _check(p.finetune_optimizer in GRADIENT_OPTIMIZERS,
         "pretrain.finetune_optimizer", p.finetune_optimizer,
         f"must be one of {GRADIENT_OPTIMIZERS}")
  _check(p.epochs >= 1, "pretrain.epochs", p.epochs, "must be >= 1")
  _check(0 <= p.alpha <= 1, "pretrain.alpha", p.alpha, "must be in [0, 1]")
  _check(p.finetune_learning_rate > 0, "pretrain.finetune_learning_rate",
         p.finetune_learning_rate, "must be > 0")
  for field in ("learning_rate", "reg", "init_stddev", "l2_weights"):
    _check(math.isfinite(t[field]), f"train.{field}", t[field],
           "must be finite")
  _check(math.isfinite(p.finetune_learning_rate),
         "pretrain.finetune_learning_rate", p.finetune_learning_rate,
         "must be finite")
  _check(t.learning_rate > 0, "train.learning_rate", t.learning_rate,
         "must be > 0")
  _check(t.reg >= 0, "train.reg", t.reg, "must be >= 0")
  if m.name in ("ials", "ease"):  # a positive definite system per row
    _check(t.reg > 0, "train.reg", t.reg, f"{m.name}: must be > 0")
  _check(config.ials.solver in ("cholesky", "cg"), "ials.solver",
         config.ials.solver, "must be 'cholesky' or 'cg'")
  _check(config.ials.cg_steps >= 1, "ials.cg_steps", config.ials.cg_steps,
         "must be >= 1")
  for field in ("alpha0", "nu"):
    value = config.ials[field]
    _check(math.isfinite(value) and value >= 0, f"ials.{field}", value,
           "must be finite and >= 0")
  _check(t.init_stddev > 0, "train.init_stddev", t.init_stddev, "must be > 0")
  _check(0 <= t.seed <= MAX_SEED, "train.seed", t.seed,
         f"must be in [0, {MAX_SEED}]")
  _check(0 <= config.data.seed <= MAX_SEED, "data.seed", config.data.seed,
         f"must be in [0, {MAX_SEED}]")
  for field, epochs in (("train.epochs", t.epochs),
                        ("pretrain.epochs", p.epochs)):
    _check(epochs <= MAX_EPOCHS, field, epochs,
           f"must be <= {MAX_EPOCHS} (ncf_config.MAX_EPOCHS)")
  for field in ("num_negatives", "epochs", "batch_size", "window",
                "num_seeds"):
    value = t[field]
    _check(value >= 1, f"train.{field}", value, "must be >= 1")
  _check(e.every >= 1, "eval.every", e.every, "must be >= 1")
  _check(config.checkpoint.keep >= 0, "checkpoint.keep",
         config.checkpoint.keep, "must be >= 0")
  _check(e.k >= 1, "eval.k", e.k, "must be >= 1")
  _check(len(e.full_ranking_ks) > 0 and all(
      checks.is_whole(k) and k >= 1 for k in e.full_ranking_ks),
         "eval.full_ranking_ks", e.full_ranking_ks,
         "needs whole numbers >= 1")
  _check(0 < e.gamma <= 1, "eval.gamma", e.gamma, "must be in (0, 1]")
  _check(config.data.format in FORMATS, "data.format", config.data.format,
         f"must be one of {FORMATS}")
  if config.data.format == "ncf" and config.data.get("name") == "default":
    _check_generated(config.data)
  if config.data.format == "lists":  # judged by full ranking alone
    _check(e.full_ranking, "eval.full_ranking", e.full_ranking,
           "item lists have no sampled negatives: must be True")
    _check(e.k in e.full_ranking_ks, "eval.k", e.k,
           f"item lists: the recall@k judged must be one of "
           f"eval.full_ranking_ks={tuple(e.full_ranking_ks)}")
  if num_candidates is not None:
    _check(e.k <= num_candidates, "eval.k", e.k,
           f"must be <= the {num_candidates} ranked candidates per user")


def _check_generated(data) -> None:
  """The generated data's sizes: datasets.generate_default draws dense
  users x items arrays (a few float64 ones at once, about 40 bytes a cell)."""
  for field in ("num_users", "num_items"):
    _check(checks.is_whole(data[field]) and data[field] >= 1, f"data.{field}",
           data[field], "must be a whole number >= 1")
  least = GENERATED_NEGATIVES + 2  # a test item, a training item, negatives
  _check(data.num_items >= least, "data.num_items", data.num_items,
         f"must be >= {least}: each user of the generated data has 2 "
         f"positives at least and {GENERATED_NEGATIVES} sampled negatives")
  need, have = 40 * data.num_users * data.num_items, checks.host_bytes()
  _check(need <= 0.5 * have, "data.num_users", data.num_users,
         f"x data.num_items={data.num_items}: generating them needs about "
         f"{need / 2**30:.1f} GiB, more than half of this host's "
         f"{have / 2**30:.1f} GiB")


def _memory_bytes(config, num_users, num_items, num_candidates) -> int:
  """An estimate of the device memory a run needs (float32 everywhere).

  Per seed: the embedding tables and a given MLP tower's weights (x3 with
  Adam's moments, x2 for their update), the evaluation's gathered rows
  (users x candidates x d, twice) and a step's batch (a few B x d arrays,
  and the tower's activations).
  """
  t, d, hidden = config.train, config.model.dim, config.model.hidden
  if config.model.name == "ease":  # at least B solved in place and its
    # copy to the device, and X (dot_baselines.ease_in_place)
    return 4 * (2 * num_items**2 + num_users * num_items)
  layers = ([d, *hidden, 1] if hidden and config.model.name in TOWERED
            else [])
  weights = sum(a * b for a, b in zip(layers, layers[1:]))
  tables = ((num_users + num_items) * d + weights) * (
      3 if "adam" in t.optimizer else 1)
  rows = t.window if t.optimizer == "exact" else t.batch_size
  batch = rows * (d * 8 + 2 * sum(layers))
  if config.model.name == "ials":  # a chunk's gathered rows and systems
    batch = (1 << 17) * d + 1024 * d * d * 2
  evaluation = num_users * num_candidates * d * 2
  return 4 * t.num_seeds * (2 * tables + evaluation + batch)


def validate_cutoffs(config, data) -> None:
  """The full-ranking cut-offs within the dataset's items (ConfigError)."""
  ks = config.eval.full_ranking_ks
  _check(not config.eval.full_ranking or max(ks) <= data.num_items,
         "eval.full_ranking_ks", tuple(ks),
         f"must be <= the dataset's {data.num_items} items")


def validate_sizes(config, data) -> None:
  """Checks what the config asks of this dataset: full-ranking cut-offs
  within its items, the int32 positions of an epoch's stream, and memory
  against the device's (ConfigError)."""
  t = config.train
  validate_cutoffs(config, data)
  if config.model.name == "popularity":
    return
  # iALS and EASE^R solve; they draw no stream of negatives.
  stream = (0 if config.model.name in ("ials", "ease") else
            data.train_users.shape[0] * (1 + t.num_negatives))
  _check(stream + max(t.batch_size, t.window) < 2**31, "train.num_negatives",
         t.num_negatives, f"{data.train_users.shape[0]} positives x (1 + m) "
         "examples per epoch must stay below 2^31 (int32 stream positions)")
  from dot_vs_learned import evaluate  # pylint: disable=g-import-not-at-top
  # Item lists have no sampled candidates (full ranking: chunked).
  sampled = (1 + data.test_negatives.shape[1]
             if evaluate.has_negatives(data) else 0)
  need = _memory_bytes(config, data.num_users, data.num_items, sampled)
  have = checks.available_bytes()
  if need > 0.9 * have:
    sizes = ", ".join(f"{f}={v}" for f, v in (
        ("model.dim", config.model.dim), ("train.num_seeds", t.num_seeds),
        ("train.batch_size", t.batch_size), ("train.window", t.window)))
    raise ConfigError(
        f"config fields {sizes}: the run needs about {need / 2**30:.1f} GiB "
        f"on {data.num_users} users x {data.num_items} items, more than 90% "
        f"of the device's {have / 2**30:.1f} GiB")


def run_label(name, dim) -> str:
  """"mf d=64"; "ease", "popularity" (no d)."""
  return name if name in CLOSED_FORM else f"{name} d={dim}"


def predictive_factor(model_config):
  """NCF's "predictive factor" k of a model of embedding dimension d.

  Paper App. A.3: d = 2k for the 3-layer MLP and d = 3k for NeuMF; for GMF k
  is d; MF and popularity have none.
  """
  divisor = {"gmf": 1, "mlp": 2, "neumf": 3, "neumf_pretrained": 3}
  if model_config.name not in divisor or (
      model_config.name == "mlp" and model_config.hidden):
    return None
  return model_config.dim // divisor[model_config.name]


def default_config():
  """The fields of every NCF config; configs/*.py override what differs."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict()
  config.experiment = "ncf"  # which experiment main.py runs
  config.data = ml_collections.ConfigDict(dict(
      name="default",  # "default" (generated, embedded), "ml-1m", "pinterest-20".
      format="ncf",  # "ncf" ({name}.train.rating etc.) or "lists" (train.txt
      # and test.txt of user item item ...; full ranking only: item_lists.py)
      dir="",  # folder with {name}.train.rating etc.; "" = download cache.
      cache_dir="",  # "" = $DOT_VS_LEARNED_CACHE or ~/.cache/dot_vs_learned.
      download=True,  # fetch missing NCF files (pinned checksums).
      seed=0,  # generator seed of the "default" data.
      num_users=2000,  # users of the "default" data.
      num_items=1000,  # items of the "default" data.
  ))
  config.model = ml_collections.ConfigDict(dict(
      name="mf",  # "mf" (Eq. 2), "gmf" (Eq. 7), "mlp", "neumf",
      # "neumf_pretrained", "popularity", "ials" (ials.py), "ease" (ease.py)
      dim=64,  # embedding dimension d per side; MF counts its bias in d.
      hidden=(),  # MLP layer sizes; () = NCF's [4k, 2k, k] for d = 2k (3k).
  ))
  config.train = ml_collections.ConfigDict(dict(
      optimizer="batched",  # MF SGD: "exact" or "batched" (sum); or "adam",
      # "lazy_adam" (only the embedding rows a batch uses move), "sgd".
      learning_rate=0.002,  # eta; App. A.2: 0.002 for MovieLens.
      reg=0.005,  # lambda: L2 on used embedding rows; App. A.2: 0.005.
      # iALS: lambda of its frequency-scaled L2; EASE^R: lambda of B.
      l2_weights=0.0,  # adam: L2 on layer kernels (NCF default 0).
      num_negatives=8,  # m negatives per positive; App. A.2: 8 for MovieLens.
      epochs=256,  # training epochs; App. A.2: 256.
      init_stddev=0.1,  # sigma of the N(0, sigma^2) init; App. A.2: 0.1.
      batch_size=1024,  # examples per step of `batched`.
      window=64,  # examples per conflict-free wave window of `exact`.
      seed=0,  # root seed; seed i trains with split(key(seed), n)[i].
      num_seeds=1,  # seeds trained together (vmapped); App. A.2 reports 8.
  ))
  config.pretrain = ml_collections.ConfigDict(dict(  # neumf_pretrained only
      epochs=20,  # epochs of each of the GMF and MLP stages (NCF: 20).
      alpha=0.5,  # NCF §3.4.1: weight of GMF in the joined output layer.
      finetune_optimizer="sgd",  # NCF §3.4.1: vanilla SGD for fine-tuning.
      finetune_learning_rate=0.001,  # fine-tuning SGD; NCF code's default.
  ))
  config.ials = ml_collections.ConfigDict(dict(  # model.name="ials" only
      alpha0=0.3,  # weight of every pair as an unobserved 0; ML-1M: 0.3
      nu=1.0,  # L2 of a row: lambda (n + alpha0 |other side|)^nu (Rendle
      # et al. 2022: 1)
      solver="cholesky",  # rows solved exactly; "cg": cg_steps steps of
      # conjugate gradients from the current factors (faster, approximate)
      cg_steps=3,  # "cg" only; the implicit library's default: 3
  ))
  config.eval = ml_collections.ConfigDict(dict(
      every=16,  # evaluate every N epochs (the last epoch always).
      k=10,  # cut-off of HR@K and NDCG@K; NCF §4.1: 10.
      full_ranking=True,  # also rank against every untrained item (ncf_eval)
      full_ranking_ks=(10,),  # cut-offs K of the full ranking
      gamma=0.1,  # the bias-variance correction's gamma (Krichene-Rendle)
  ))
  config.checkpoint = ml_collections.ConfigDict(dict(
      keep=2,  # checkpoints kept, one per evaluation; 0: none (no resume)
      keep_finished=False,  # keep them after the run ends (else deleted:
      # params.npz holds the final parameters; a finished run never resumes)
  ))
  return config


def use_ials(config, settings) -> None:
  """Switches `config` to iALS with `settings` (ials.ML1M, ials.PINTEREST:
  dim, reg, alpha0, epochs, init_stddev), evaluated after every epoch."""
  config.model.update(name="ials", dim=settings["dim"])
  config.train.update(reg=settings["reg"], epochs=settings["epochs"],
                      init_stddev=settings["init_stddev"])
  config.ials.alpha0 = settings["alpha0"]
  config.eval.every = 1


def use_ncf_recipe(config, model_name) -> None:
  """Switches `config` to NCF's recipe for a learned model (He et al. 2017).

  Adam with learning rate 0.001, batches of 256, 4 negatives per positive,
  embeddings from N(0, 0.01^2), 20 epochs, no L2 (the defaults of NCF's
  code). d = 64 for GMF and MLP (predictive factor 32), 63 for NeuMF (the
  multiple of 3 nearest 64: predictive factor 21). The pretrained NeuMF
  trains its GMF and MLP stages with that recipe, then fine-tunes by SGD.
  """
  config.model.name = model_name
  config.model.dim = 63 if model_name.startswith("neumf") else 64
  config.train.update(optimizer="adam", learning_rate=0.001, batch_size=256,
                      num_negatives=4, init_stddev=0.01, epochs=20, reg=0.0,
                      l2_weights=0.0)
  config.eval.every = 1
