"""data.py: reading the published pickles as data, their checks, and seeded episodes."""

import dataclasses
import gzip
import hashlib
import os
import pickle
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

import config
import data
import fixtures
import sizes


def _write(tmp_path, contents, flavour="py3", name="train_embeddings.pkl"):
  path = str(tmp_path / name)
  fixtures.write_pickle(path, contents, flavour)
  return path


def _split(num_classes=3, images=4, dim=5, keys_as="S", seed=0):
  return fixtures.make_split("train", num_classes, images, dim, np.random.default_rng(seed),
                             keys_as)


def _provider(tmp_path, split="train", seed=0, **kwargs):
  root = fixtures.make_dataset(str(tmp_path / "data"), **kwargs)
  cfg = config.DataConfig(data_path=root, dataset_name=kwargs.get("dataset_name", "tiny"))
  return data.DataProvider(split, cfg, seed=seed)


# ---- Both pickle flavours. ----

@pytest.mark.parametrize("flavour", ["py2", "py3"])
@pytest.mark.parametrize("keys_as", ["S", "U", "O", "list"])
def test_both_pickle_flavours_load_the_same_index(tmp_path, flavour, keys_as):
  contents = _split(keys_as=keys_as)
  loaded = data.load_embeddings(_write(tmp_path, contents, flavour))
  np.testing.assert_array_equal(loaded.embeddings, contents["embeddings"])
  assert loaded.embeddings.dtype == np.float32
  assert loaded.class_names == ["n00000000", "n00000001", "n00000002"]
  assert loaded.image_names[:2] == ["n00000000_00000.JPEG", "n00000000_00001.JPEG"]
  assert [list(rows) for rows in loaded.rows_by_class] == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                          [8, 9, 10, 11]]


def test_python2_fixture_needs_latin1_like_the_published_files():
  raw = fixtures.py2_pickle_bytes(_split())
  with pytest.raises(UnicodeDecodeError):
    pickle.loads(raw)  # Python 3's default ASCII decoding of Python 2 `str`.
  assert pickle.loads(raw, encoding="latin1")["embeddings"].shape == (12, 5)
  assert b"numpy.core.multiarray\n_reconstruct" in raw  # The Python 2 era module name.


def test_bytes_dict_keys_and_nul_padded_keys_are_accepted(tmp_path):
  contents = _split()
  keys = [k + b"\x00\x00" for k in contents["keys"].tolist()]
  path = _write(tmp_path, {b"keys": keys, b"embeddings": contents["embeddings"]})
  loaded = data.load_embeddings(path)
  assert loaded.image_names[0] == "n00000000_00000.JPEG"


# ---- Keys and consistency checks. ----

def test_parse_key_reads_class_and_image_name():
  assert data.parse_key("123-n01532829-n01532829_10011.JPEG") == (
      "n01532829", "n01532829_10011.JPEG")


@pytest.mark.parametrize("key", ["n01532829-n01532829_1.JPEG", "a-n015-n015_1-x.JPEG",
                                 "a-n01532829-n01532830_1.JPEG", "a-n01532829-n01532829.JPEG",
                                 "a--_1.JPEG"])
def test_parse_key_refuses_malformed_keys(key):
  with pytest.raises(data.DataError, match="malformed key"):
    data.parse_key(key, "f.pkl")


def _bad_contents():
  good = _split()
  embeddings, keys = good["embeddings"], good["keys"]
  with_nan = embeddings.copy()
  with_nan[3, 1] = np.nan
  with_inf = embeddings.copy()
  with_inf[5, 0] = -np.inf
  beyond_float32 = embeddings.astype(np.float64)
  beyond_float32[7, 2] = 1e300  # Finite here, inf once cast to the float32 it is used in.
  norm_overflows = embeddings.copy()
  norm_overflows[4, :2] = 3e38  # Finite, but its squared norm is not.
  zero_row = embeddings.copy()
  zero_row[6] = 0.0
  duplicated = keys.copy()
  duplicated[1] = duplicated[0]
  return {
      "not a dict": ([keys, embeddings], "holds a list, expected a dict"),
      "no keys": ({"embeddings": embeddings}, "expected key 'keys'"),
      "no embeddings": ({"keys": keys, "labels": good["labels"]}, "expected key 'embeddings'"),
      "1-D embeddings": ({"keys": keys, "embeddings": embeddings[:, 0]}, "2-D float array"),
      "3-D embeddings": ({"keys": keys, "embeddings": embeddings[:, :, None]},
                         "2-D float array"),
      "int embeddings": ({"keys": keys, "embeddings": embeddings.astype(np.int32)},
                         "2-D float array"),
      "list embeddings": ({"keys": keys, "embeddings": embeddings.tolist()}, "a list"),
      "empty embeddings": ({"keys": keys[:0], "embeddings": embeddings[:0]}, "non-empty"),
      "NaN": ({"keys": keys, "embeddings": with_nan}, "NaN or Inf in float32 .first in row 3"),
      "Inf": ({"keys": keys, "embeddings": with_inf}, "NaN or Inf in float32 .first in row 5"),
      "beyond float32": ({"keys": keys, "embeddings": beyond_float32},
                         "NaN or Inf in float32 .first in row 7"),
      "norm overflows": ({"keys": keys, "embeddings": norm_overflows},
                         "L2 norm .* \\(first out of range: row 4\\), expected norms whose"),
      "tiny": ({"keys": keys, "embeddings": embeddings * np.float32(1e-25)},
               "first out of range: row 0"),
      "huge": ({"keys": keys, "embeddings": embeddings * np.float32(1e25)},
               "first out of range: row 0"),
      "zero row": ({"keys": keys, "embeddings": zero_row}, "first out of range: row 6"),
      "row count": ({"keys": keys[:-1], "embeddings": embeddings}, "11 keys but 12"),
      "malformed key": ({"keys": np.array([b"a-b-c"] + keys[1:].tolist()),
                         "embeddings": embeddings}, "malformed key 'a-b-c'"),
      "duplicate image": ({"keys": duplicated, "embeddings": embeddings},
                          "duplicate image name 'n00000000_00000.JPEG'"),
      "non-string key": ({"keys": [7] + keys[1:].tolist(), "embeddings": embeddings},
                         r"keys\[0\] is a int"),
      "2-D keys": ({"keys": keys.reshape(3, 4), "embeddings": embeddings}, "1-D array of"),
  }


@pytest.mark.parametrize("case", sorted(_bad_contents()))
def test_each_consistency_check_names_the_file_and_the_expectation(tmp_path, case):
  contents, message = _bad_contents()[case]
  path = _write(tmp_path, contents)
  with pytest.raises(data.DataError, match=message) as error:
    data.load_embeddings(path)
  assert str(error.value).startswith(path + ": ")
  assert "\n" not in str(error.value)


KEYS = ["a-n0-n0_1.JPEG", "a-n0-n0_2.JPEG"]


@pytest.mark.parametrize("rows, found", [
    # Norms 5e-25 and 1e-24: their squares underflow to 0 in float32.
    ([[3e-25, 4e-25], [6e-25, 8e-25]], "L2 norm 5e-25 to 1e-24 (first out of range: row 0)"),
    # 5e+25 squared overflows float32.
    ([[3.0, 4.0], [3e25, 4e25]], "L2 norm 5 to 5e+25 (first out of range: row 1)"),
    # 1e-07 squared is below tf.math.l2_normalize's epsilon: not scaled to unit length.
    ([[6e-8, 8e-8], [3.0, 4.0]], "L2 norm 1e-07 to 5 (first out of range: row 0)"),
    ([[3.0, 4.0], [0.0, 0.0]], "L2 norm 0 to 5 (first out of range: row 1)"),
])
def test_rows_the_model_cannot_scale_to_unit_length_are_refused_with_the_norms_found(rows,
                                                                                      found):
  with pytest.raises(data.DataError) as error:
    data.validate_embeddings({"keys": KEYS, "embeddings": np.array(rows, np.float32)}, "f.pkl")
  assert str(error.value) == (
      f"f.pkl: 'embeddings' has rows of {found}, expected norms whose squares in float32 lie "
      "in [1e-12, 3.403e+38] (norms of 1e-06 to 1.84e+19), which the model scales to unit "
      "length: rescale them")


@pytest.mark.parametrize("rows", [[[6e-6, 8e-6], [3.0, 4.0]], [[3.0, 4.0], [3e18, 4e18]]])
def test_rows_within_float32s_reach_of_unit_length_are_accepted(rows):
  loaded = data.validate_embeddings({"keys": KEYS, "embeddings": np.array(rows, np.float32)},
                                    "f.pkl")
  assert loaded.embeddings.shape == (2, 2)


def test_an_unreachable_object_store_is_one_line(monkeypatch):
  def unreachable(path):
    raise tf.errors.FailedPreconditionError(None, None, "Error executing an HTTP request\nmore")
  monkeypatch.setattr(tf.io.gfile, "exists", unreachable)
  cfg = config.DataConfig(data_path="gs://no-such-bucket/x", dataset_name="miniImageNet")
  with pytest.raises(data.DataError, match=r"^gs://no-such-bucket/x/miniImageNet/center/"
                     r"train_embeddings.pkl: unreachable \(FailedPreconditionError: Error "
                     r"executing an HTTP request more\)$"):
    data.load_split(cfg, data.MetaSplit.TRAIN)


def test_missing_file_names_the_expected_path_and_embeddings_zip(tmp_path):
  cfg = config.DataConfig(data_path=str(tmp_path), dataset_name="miniImageNet")
  with pytest.raises(data.DataError) as error:
    data.DataProvider("train", cfg)
  message = str(error.value)
  assert os.path.join(str(tmp_path), "miniImageNet", "center", "train_embeddings.pkl") in message
  assert "embeddings.zip" in message


def test_missing_data_path_is_an_error_unless_the_dataset_is_bundled():
  with pytest.raises(data.DataError, match="--data_path is required.*embeddings.zip"):
    data.split_path(config.DataConfig(dataset_name="miniImageNet"), data.MetaSplit.TRAIN)
  bundled = data.split_path(config.DataConfig(dataset_name="icons"), data.MetaSplit.TEST)
  assert bundled == os.path.join(data.BUNDLED_DATA_PATH, "icons", "center",
                                 "test_embeddings.pkl")


@pytest.mark.parametrize("damage", ["truncated", "garbled", "empty", "not a pickle"])
def test_truncated_or_garbled_files_are_refused(tmp_path, damage):
  raw = fixtures.py2_pickle_bytes(_split())
  damaged = {"truncated": raw[:len(raw) // 2],
             "garbled": raw[:40] + bytes(range(256)) + raw[300:],
             "empty": b"",
             "not a pickle": b"this is a text file\n"}[damage]
  path = str(tmp_path / "train_embeddings.pkl")
  with open(path, "wb") as f:
    f.write(damaged)
  with pytest.raises(data.DataError,
                     match="not a valid embeddings pickle|refused global") as error:
    data.load_embeddings(path)
  assert str(error.value).isprintable()


class _CreatesAFile:

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (open, (self.path, "w"))


def test_a_pickle_that_would_create_a_file_is_refused_and_nothing_runs(tmp_path):
  canary = tmp_path / "canary"
  contents = dict(_split(), labels=_CreatesAFile(str(canary)))
  path = _write(tmp_path, contents)
  with pytest.raises(data.DataError, match="refused global 'io.open'"):
    data.load_embeddings(path)
  assert not canary.exists()
  pickle.loads(open(path, "rb").read())  # The same file, loaded with plain pickle...
  assert canary.exists()  # ...would have run it.


def test_os_system_in_a_python2_pickle_is_refused(tmp_path):
  canary = tmp_path / "canary"
  raw = (b"\x80\x02cos\nsystem\nU" + bytes([len(f"touch {canary}")])
         + f"touch {canary}".encode() + b"\x85R.")
  path = str(tmp_path / "test_embeddings.pkl")
  with open(path, "wb") as f:
    f.write(raw)
  with pytest.raises(data.DataError, match="refused global 'os.system'"):
    data.load_embeddings(path)
  assert not canary.exists()


# ---- Splits and train_on_val. ----

def test_train_on_val_meta_trains_on_train_and_val_classes(tmp_path):
  root = fixtures.make_dataset(str(tmp_path), classes=(4, 3, 2))
  plain = config.DataConfig(data_path=root, dataset_name="tiny")
  merged = config.DataConfig(data_path=root, dataset_name="tiny", train_on_val=True)
  assert data.DataProvider("train", plain).num_classes == 4
  train = data.DataProvider("train", merged)
  assert train.class_names == [fixtures.class_name("train", c) for c in range(4)] + [
      fixtures.class_name("val", c) for c in range(3)]
  assert data.DataProvider("val", merged).num_classes == 3
  assert data.DataProvider("test", merged).num_classes == 2


def test_embedding_dim_is_read_from_the_data(tmp_path):
  assert _provider(tmp_path, dim=24).embedding_dim == 24


def test_too_few_classes_for_num_classes(tmp_path):
  provider = _provider(tmp_path, split="val")
  with pytest.raises(data.DataError, match="5 classes, fewer than --num_classes=6"):
    provider.get_batch(2, 6, 1, 1)


def test_a_class_too_small_for_shots_plus_queries_is_named(tmp_path):
  root = str(tmp_path)
  rng = np.random.default_rng(0)
  contents = fixtures.make_split("train", 6, [20, 20, 7, 20, 20, 20], 8, rng)
  fixtures.write_pickle(os.path.join(root, "tiny", "center", "train_embeddings.pkl"),
                        contents)
  provider = data.DataProvider("train", config.DataConfig(data_path=root, dataset_name="tiny"))
  with pytest.raises(data.DataError, match="class 'n00000002' has 7 images, expected at least "
                     "1 support . 15 query = 16"):
    provider.get_batch(2, 5, 1, 15)
  assert provider.remaining_examples_per_class(1) == 6
  provider.get_batch(2, 5, 1, 6)


# ---- Episodes. ----

def test_episode_shapes_dtypes_and_class_major_labels(tmp_path):
  batch = _provider(tmp_path, dim=16).get_batch(3, 5, 2, 4)
  assert batch.tr_input.shape == (3, 5, 2, 16) and batch.tr_input.dtype == tf.float32
  assert batch.val_input.shape == (3, 5, 4, 16) and batch.val_input.dtype == tf.float32
  assert batch.tr_output.shape == (3, 5, 2, 1) and batch.tr_output.dtype == tf.int32
  assert batch.val_output.shape == (3, 5, 4, 1) and batch.val_output.dtype == tf.int32
  assert batch.tr_info.shape == (3, 5, 2) and batch.tr_info.dtype == tf.string
  assert batch.val_info.shape == (3, 5, 4)
  for labels in (batch.tr_output.numpy(), batch.val_output.numpy()):
    assert (labels[..., 0] == np.arange(5)[None, :, None]).all()  # Label == class position.
    # The original's sanity check: the labels of a task sum to N(N-1)/2 per example slot.
    assert (labels.sum(axis=(1, 3)) == 5 * 4 // 2).all()


def test_episodes_are_l2_normalised_rows_of_the_file(tmp_path):
  provider = _provider(tmp_path, dim=16)
  raw = data.load_embeddings(data.split_path(provider._config, data.MetaSplit.TRAIN))
  row_of = {name: row for row, name in enumerate(raw.image_names)}
  batch = provider.get_batch(2, 5, 1, 3)
  inputs = np.concatenate([batch.tr_input.numpy(), batch.val_input.numpy()], axis=2)
  names = np.concatenate([batch.tr_info.numpy(), batch.val_info.numpy()], axis=2)
  np.testing.assert_allclose(np.linalg.norm(inputs, axis=-1), 1.0, rtol=1e-6)
  for vector, name in zip(inputs.reshape(-1, 16), names.ravel()):
    expected = raw.embeddings[row_of[name.decode()]]
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-5)


def test_episode_classes_are_distinct_and_examples_never_repeat(tmp_path):
  batch = _provider(tmp_path).get_batch(50, 5, 3, 10)
  tr_names, val_names = batch.tr_info.numpy(), batch.val_info.numpy()
  for tr_task, val_task in zip(tr_names, val_names):
    classes = [names[0].decode().split("_")[0] for names in tr_task]
    assert len(set(classes)) == 5
    for c in range(5):  # Every example of a row belongs to that row's class.
      row = list(tr_task[c]) + list(val_task[c])
      assert {name.decode().split("_")[0] for name in row} == {classes[c]}
    support, queries = set(tr_task.ravel()), set(val_task.ravel())
    assert len(support) == tr_task.size and len(queries) == val_task.size
    assert not support & queries


def test_all_remaining_query_count(tmp_path):
  provider = _provider(tmp_path, split="test", images_per_class=[20, 17, 20, 20, 20])
  assert provider.remaining_examples_per_class(1) == 16
  assert provider.remaining_examples_per_class(5) == 12
  assert provider.remaining_examples_per_class(5, fixed=3) == 3
  capped = data.DataProvider("test", config.DataConfig(
      data_path=str(tmp_path / "data"), dataset_name="tiny", total_examples_per_class=10))
  assert capped.remaining_examples_per_class(1) == 9  # min(600-like cap, smallest) - K.
  batch = provider.get_batch(4, 5, 1, provider.remaining_examples_per_class(1))
  assert batch.val_input.shape[2] == 16


def test_same_seed_same_episodes_and_different_seeds_differ(tmp_path):
  def episodes(seed, split="train"):
    provider = _provider(tmp_path, split=split, seed=seed)
    return [provider.get_batch(4, 5, 1, 3).val_info.numpy() for _ in range(2)]

  first, again = episodes(7), episodes(7)
  np.testing.assert_array_equal(first[0], again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert not np.array_equal(first[0], first[1])  # Successive batches differ.
  assert not np.array_equal(first[0], episodes(8)[0])


def test_sampling_covers_every_class_and_example(tmp_path):
  provider = _provider(tmp_path, classes=(6, 5, 5), images_per_class=10)
  names = provider.get_batch(200, 5, 1, 2).tr_info.numpy().ravel()
  assert len({name.split(b"_")[0] for name in names}) == 6
  assert len(set(names)) == 60


def test_sampling_compiles_into_a_graph_without_python_ops(tmp_path):
  provider = _provider(tmp_path)
  sample = tf.function(lambda: provider.get_batch(2, 5, 1, 4), autograph=False)
  graph = sample.get_concrete_function().graph
  op_types = {op.type for op in graph.get_operations()}
  assert not op_types & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
  first, second = sample(), sample()
  assert first.tr_input.shape == (2, 5, 1, 16)
  assert not np.array_equal(first.tr_info.numpy(), second.tr_info.numpy())


def test_get_instance_is_one_unbatched_episode(tmp_path):
  instance = _provider(tmp_path).get_instance(5, 2, 3)
  assert isinstance(instance, data.ProblemInstance)
  assert instance.tr_input.shape == (5, 2, 16) and instance.val_output.shape == (5, 3, 1)


def _unequal_classes_out_of_order(dim=8):
  """A split of 6 classes of 18 to 22 images whose rows are not class after class."""
  rng = np.random.default_rng(1)
  split = fixtures.make_split("test", 6, [20, 18, 22, 19, 18, 21], dim, rng)
  order = rng.permutation(len(split["keys"]))
  return data.validate_embeddings({"keys": split["keys"][order],
                                   "embeddings": split["embeddings"][order]}, "<shuffled>")


@pytest.mark.parametrize("queries", [17, 12, 3])  # All remaining, most, few (gathered).
def test_query_logits_are_the_gathered_queries_times_the_weights(queries):
  provider = data.DataProvider(
      "test", config.DataConfig(data_path="<memory>", dataset_name="tiny"),
      embeddings=_unequal_classes_out_of_order())
  rows = provider.sample_rows(7, 5, 1 + queries)[:, :, 1:]
  weights = tf.constant(np.random.default_rng(2).normal(size=(7, 5, 8)))
  gathered = tf.cast(provider.episodes(rows, 0).val_input, tf.float64)
  np.testing.assert_allclose(provider.query_logits(rows, weights),
                             np.einsum("tijd,tnd->tijn", gathered, weights), rtol=0, atol=1e-12)


def test_a_gzipped_pickle_stands_in_for_a_missing_plain_one(tmp_path):
  root = fixtures.make_dataset(str(tmp_path / "plain"))
  data_config = config.DataConfig(data_path=root, dataset_name="tiny")
  plain = data.load_split(data_config, data.MetaSplit.TRAIN)
  path = data.split_path(data_config, data.MetaSplit.TRAIN)
  with open(path, "rb") as f:
    compressed = gzip.compress(f.read())
  os.remove(path)
  with open(path + ".gz", "wb") as f:
    f.write(compressed)
  assert data.split_path(data_config, data.MetaSplit.TRAIN) == path + ".gz"
  zipped = data.load_split(data_config, data.MetaSplit.TRAIN)
  assert zipped.keys == plain.keys and np.array_equal(zipped.embeddings, plain.embeddings)
  with open(path + ".gz", "wb") as f:
    f.write(compressed[:40])  # Truncated: a one-line DataError like a truncated pickle.
  with pytest.raises(data.DataError, match=r"train_embeddings\.pkl\.gz: not a valid"):
    data.load_split(data_config, data.MetaSplit.TRAIN)


def test_the_data_digest_is_of_the_bytes_not_the_path(tmp_path):
  def digest(root, seed=0):
    fixtures.make_dataset(str(root), seed=seed)
    cfg = config.DataConfig(data_path=str(root), dataset_name="tiny")
    return data.data_digest([data.DataProvider(split, cfg) for split in ("train", "val")])
  first = digest(tmp_path / "a")
  assert digest(tmp_path / "moved") == first  # The same files elsewhere.
  assert digest(tmp_path / "other", seed=1) != first  # Other embeddings of the same shape.


def test_a_split_reads_alike_from_disk_and_any_tf_file_system(tmp_path):
  """A local pickle streams from disk, another comes through tf.io.gfile: the same split
  either way."""
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  local = os.path.join(root, "tiny", "center", "train_embeddings.pkl")
  elsewhere = f"ram://{tmp_path.name}/train_embeddings.pkl"
  with open(local, "rb") as f, tf.io.gfile.GFile(elsewhere, "wb") as g:
    g.write(f.read())
  loaded, again = data.load_embeddings(local), data.load_embeddings(elsewhere)
  np.testing.assert_array_equal(loaded.embeddings, again.embeddings)
  assert loaded.keys == again.keys


def test_a_provider_keeps_the_index_and_the_digest_of_the_rows_as_loaded_not_the_rows(tmp_path):
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  data_config = config.DataConfig(data_path=root, dataset_name="tiny")
  loaded = data.load_split(data_config, data.MetaSplit.TRAIN)
  provider = data.DataProvider("train", data_config)
  index = provider.split_data
  assert not hasattr(index, "embeddings")
  assert (index.keys, index.image_names, index.class_names) == (
      loaded.keys, loaded.image_names, loaded.class_names)
  assert [list(rows) for rows in index.rows_by_class] == [
      list(rows) for rows in loaded.rows_by_class]
  assert provider.keys_digest == data.keys_digest(loaded)
  assert provider.embeddings_digest == hashlib.sha256(loaded.embeddings.tobytes()).hexdigest()
  np.testing.assert_array_equal(provider._embeddings.numpy(),  # pylint: disable=protected-access
                                tf.math.l2_normalize(tf.constant(loaded.embeddings), -1).numpy())


def test_the_bundled_splits_digest_is_that_of_their_files():
  """What run folders hold of their data: kept from one version of leo to the next."""
  data_config = config.DataConfig(dataset_name="icons")
  providers = [data.DataProvider(split, data_config) for split in ("train", "val", "test")]
  assert data.data_digest(providers) == data.run_data_digest(data_config) == (
      "94261c45bcc486960a3d196d40f7c5de105cd1053ae8ae39cd5a818d48c5c01f")


@pytest.mark.parametrize("alignment", [4, 16, 48])
def test_a_provider_takes_rows_at_any_alignment(alignment):
  """TF reads a provider's rows in place only at 64 bytes; others are copied there first."""
  loaded = _unequal_classes_out_of_order()
  buffer = np.empty(loaded.embeddings.nbytes + 64, np.uint8)
  start = (alignment - buffer.ctypes.data) % 64
  rows = buffer[start:start + loaded.embeddings.nbytes].view(np.float32).reshape(
      loaded.embeddings.shape)
  rows[...] = loaded.embeddings
  provider = data.DataProvider("test", config.DataConfig(data_path="<memory>",
                                                         dataset_name="tiny"),
                               embeddings=dataclasses.replace(loaded, embeddings=rows))
  np.testing.assert_array_equal(provider._embeddings.numpy(),  # pylint: disable=protected-access
                                tf.math.l2_normalize(tf.constant(loaded.embeddings), -1).numpy())
  assert provider.embeddings_digest == data.embeddings_digest(loaded)


# ---- The bound on what is unpickled. ----

def _refusal(path, zipped):
  return (f"{path}: holds more than 16 MB of pickle{' once decompressed' if zipped else ''}, "
          "a quarter of this machine's 64 MB of memory: embeddings that large need a machine "
          "with more memory")


@pytest.mark.parametrize("zipped", [False, True])
def test_a_pickle_streaming_past_the_bound_is_refused_before_it_is_all_read(
    tmp_path, monkeypatch, zipped):
  monkeypatch.setattr(sizes, "memory_bytes", lambda: 64 * 2**20)  # Bound: 16 MB.
  path = str(tmp_path / ("train_embeddings.pkl" + (".gz" if zipped else "")))
  with (gzip.open if zipped else open)(path, "wb") as f:  # A valid pickle of 32 MB.
    f.write(pickle.dumps([bytes(2**20) for _ in range(32)], protocol=4))
  tracemalloc.start()
  try:
    with pytest.raises(data.DataError) as raised:
      data.load_pickle(path)
  finally:
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
  assert str(raised.value) == _refusal(path, zipped)
  assert peak < 24 * 2**20, peak  # What was unpickled of the bound and a few blocks.


def test_every_byte_of_a_file_counts_toward_the_bound(tmp_path, monkeypatch):
  """Bytes after the pickle count too, as they did when the whole file was read first."""
  monkeypatch.setattr(sizes, "memory_bytes", lambda: 64 * 2**20)  # Bound: 16 MB.
  path = _write(tmp_path, _split())
  with open(path, "rb") as f:
    contents = f.read()
  with open(path, "wb") as f:
    f.write(contents + bytes(15 * 2**20))
  assert data.load_embeddings(path).class_names == ["n00000000", "n00000001", "n00000002"]
  with open(path, "wb") as f:
    f.write(contents + bytes(17 * 2**20))
  with pytest.raises(data.DataError) as raised:
    data.load_embeddings(path)
  assert str(raised.value) == _refusal(path, zipped=False)
