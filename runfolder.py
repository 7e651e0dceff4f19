# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The run folder: what made it, its log, its checkpoints and its best model.

    <run>/config.json        the configuration; the folder belongs to it (see `claim`)
    <run>/flags.txt          absl flagfile: `runner.py --flagfile=<run>/flags.txt` replays the run
    <run>/versions.json      leo, Python and library versions of every session of the run
    <run>/train.log          every line the run printed, appended on resume
    <run>/checkpoint         TF's checkpoint state file: the commit point of model.ckpt-<step>
    <run>/model.ckpt-<step>.*  the latest few checkpoints (model, optimiser, step, samplers)
    <run>/best_checkpoint/   the best model by validation accuracy (`BestCheckpoint`)
    <run>/damaged/           checkpoints that failed verification, kept aside, never deleted
    <run>/embedding_transform.npz  the statistics of --embedding_transform, if any (transforms.py)
    <run>/validations.jsonl, <run>/results/   see records.py

A checkpoint is verified (read in full: TF checks every tensor's checksum) before it is
trusted; a damaged one is moved into `damaged/` and the newest intact one is used.

The folder owns exactly the files it writes. A checkpoint is announced before it is written
(`model.ckpt-<step>.leo-pending`), so an uncommitted checkpoint is one leo announced and the
state file does not name; temporaries carry `storage.TEMPORARY_MARKER`. Clean-ups remove only
those, never follow a symbolic link, and a folder whose leo names are links out of it is
refused (`claim`); files of anyone else are left as they are. Every write, TF's checkpoint
files included, refuses a link anywhere below the run folder (`storage.refuse_links`).
"""

import contextlib
import datetime
import logging as logging_lib
import os
import platform
import re
import subprocess
import tempfile
from typing import List, NamedTuple, Optional, Set

from absl import logging
import numpy as np

import records
import storage
import utils

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
VERSIONS_FILE = "versions.json"
LOG_FILE = "train.log"
BEST_FOLDER = "best_checkpoint"
DAMAGED_FOLDER = "damaged"
CHECKPOINT_NAME = "model.ckpt"
STATE_FILE = "checkpoint"
TRANSFORM_FILE = "embedding_transform.npz"
MAX_CHECKPOINTS_TO_KEEP = 3
# What leo ships (the trained models, the bundled embeddings): their JSON files carry a
# checksum, so one without is refused (`read_checked_json`).
SHIPPED = os.path.join(utils.REPOSITORY, "datasets")
# The trained models shipped with leo: evaluating one leaves leo's tree as it is.
SHIPPED_MODELS = os.path.join(SHIPPED, "models")
PENDING_SUFFIX = ".leo-pending"  # `<prefix>.leo-pending`: a checkpoint being written.
TF_TEMPORARY_SUFFIX = "_temp"  # `<prefix>_temp/`: the folder TF writes a checkpoint's parts in.
LOCK_FILE = storage.RunLock.NAME
# The names leo writes in a run folder (`model.ckpt-<step>...` and temporaries aside).
_OWN_NAMES = (CONFIG_FILE, FLAGS_FILE, VERSIONS_FILE, LOG_FILE, STATE_FILE, TRANSFORM_FILE,
              BEST_FOLDER, DAMAGED_FOLDER, LOCK_FILE, records.VALIDATIONS_FILE, records.RESULTS_FOLDER)
_OWN_PATTERN = re.compile(
    re.escape(CHECKPOINT_NAME) + r"-\d+(\.index|\.data-\d{5}-of-\d{5}|"
    + re.escape(TF_TEMPORARY_SUFFIX) + "|"
    + re.escape(PENDING_SUFFIX) + r")|events\.out\.tfevents\..+|\.worker-\d+")
_PENDING = re.compile(re.escape(CHECKPOINT_NAME) + r"-(\d+)" + re.escape(PENDING_SUFFIX))


def is_own(name: str) -> bool:
  """Whether leo writes files of this name in a run folder."""
  return (name in _OWN_NAMES or bool(_OWN_PATTERN.fullmatch(name))
          or storage.is_temporary(name))


def foreign_files(folder: str) -> List[str]:
  """Names in `folder` that leo did not write, which it leaves alone.

  Raises:
    LeoError: a name leo writes is a symbolic link: leo would write where it points.
  """
  names = storage.listdir(folder)
  links = [name for name in names if is_own(name) and storage.is_link(storage.join(folder, name))]
  if links:
    raise utils.LeoError(
        f"--checkpoint_path={folder}: {', '.join(links)} "
        f"{'is a symbolic link' if len(links) == 1 else 'are symbolic links'} (to "
        f"{', '.join(os.path.realpath(storage.join(folder, name)) for name in links)}); leo "
        "writes only inside its run folder: replace the link by a copy, or use another "
        "--checkpoint_path")
  return [name for name in names if not is_own(name)]


# ---- Files leo ships. ----

def is_below(path: str, folder: str) -> bool:
  """Whether `path` is a local path inside `folder` (symbolic links resolved)."""
  return storage.is_local(path) and os.path.realpath(path).startswith(
      os.path.realpath(folder) + os.sep)


def read_checked_json(path: str, what: str, spec=None):
  """`storage.read_checked_json`, except that a file leo ships (below SHIPPED) must carry
  its checksum: one without has been edited."""
  return storage.read_checked_json(path, what, spec, required=is_below(path, SHIPPED))


# ---- Identity: a folder belongs to one configuration. ----

DATA_DIGEST = "data_digest"  # The configuration's digest of the embeddings it trains on.
# The sha256 of the backbone that made those embeddings, as their PROVENANCE.json names it
# (backbone.py): a trained model and its backbone are one unit (prediction.py checks it).
BACKBONE_DIGEST = "backbone_digest"
# The digest of the fitted --embedding_transform (transforms.EmbeddingTransform.digest), for a
# run that has one: its statistics are part of the model.
TRANSFORM_DIGEST = "transform_digest"
# A configuration's entries, as config.json holds them (config.Configs.to_json, training.py).
CONFIGURATION_KEYS = ("data_config", "inner_model_config", "outer_model_config", "seed",
                      "embedding_dim", DATA_DIGEST, BACKBONE_DIGEST, TRANSFORM_DIGEST)
_SECTIONS = CONFIGURATION_KEYS[:3]
# Values of a run's configuration that only extend or observe it: a run folder may be rerun
# with other values of these. Every other value defines what is trained (`claim`).
RUN_EXTENDING_FIELDS = frozenset({"data_path", "num_steps_limit", "num_test_tasks",
                                  "metatest_batch_size"})
_SECTIONS = ("data_config", "inner_model_config", "outer_model_config")
# The form of config.json (best.json holds the same configuration).
CONFIG_SPEC = {**{section: dict for section in _SECTIONS}, "seed": int, "embedding_dim": int,
               DATA_DIGEST: (None, str), TRANSFORM_DIGEST: (None, str)}
# Values a configuration saved before they existed does not hold, and what it meant.
_ABSENT_MEANS = {"embedding_transform": "none"}


def identity(configuration) -> dict:
  """What a configuration trains: its values but those that only extend or observe a run
  (RUN_EXTENDING_FIELDS), with the digests of its data and backbone where it has them."""
  values = {key: configuration[key] for key in CONFIGURATION_KEYS[3:] if key in configuration}
  for section in _SECTIONS:
    values[section] = {name: value for name, value in configuration.get(section, {}).items()
                       if name not in RUN_EXTENDING_FIELDS}
  return values


def identity_differences(saved, current) -> List[str]:
  """`--flag=new (saved: old)` for every training value in which `current` differs."""
  differences = []
  for section in _SECTIONS:
    for name in sorted(set(saved.get(section, {})) | set(current[section])):
      if name in RUN_EXTENDING_FIELDS:
        continue
      old = saved.get(section, {}).get(name, _ABSENT_MEANS.get(name))
      new = current[section].get(name, _ABSENT_MEANS.get(name))
      if old != new:
        differences.append(f"--{name}={new!r} (saved: {old!r})")
  if saved.get("seed") != current["seed"]:
    differences.append(f"--seed={current['seed']!r} (saved: {saved.get('seed')!r})")
  if saved.get("embedding_dim") != current["embedding_dim"]:
    differences.append(f"embeddings of {current['embedding_dim']} dimensions (saved: "
                       f"{saved.get('embedding_dim')})")
  # A configuration written before leo kept a digest has none: it is adopted (`claim`).
  for key, what in ((DATA_DIGEST, "embeddings at --data_path"),
                    (BACKBONE_DIGEST, "backbone in the PROVENANCE.json of --data_path")):
    old, new = saved.get(key), current.get(key)
    if old and new and old != new:
      differences.append(f"other {what} (digest {new[:12]}, saved: {old[:12]}): the path "
                         "may change, the data may not")
  old, new = saved.get(TRANSFORM_DIGEST), current.get(TRANSFORM_DIGEST)
  if old != new and not any(name.startswith("--embedding_transform=") for name in differences):
    differences.append(f"other statistics of --embedding_transform (digest {str(new)[:12]}, "
                       f"saved: {str(old)[:12]})")
  return differences


def claim(folder: str, configuration, flag_lines: List[str]) -> List[str]:
  """Makes `folder` this configuration's run folder, or refuses if it belongs to another.

  A new folder gets config.json and flags.txt. A folder of the same configuration may be
  rerun with other run-extending or observing flags (RUN_EXTENDING_FIELDS): its
  files then record the new values; its training values are never rewritten. A folder whose
  leo names are symbolic links is refused (`foreign_files`).

  Returns:
    Lines for the run's log: files in the folder that leo leaves alone, a data digest
    adopted by a run made before leo kept one.
  """
  notes = []
  foreign = foreign_files(folder)
  if foreign:
    notes.append(f"--checkpoint_path={folder} holds files leo did not write, left as they "
                 f"are: {', '.join(sorted(foreign)[:10])}"
                 f"{' ...' if len(foreign) > 10 else ''}")
  path, saved = storage.join(folder, CONFIG_FILE), None
  if storage.exists(path):
    saved = read_config(folder)
    differences = identity_differences(saved, configuration)
    if differences:
      raise utils.LeoError(f"--checkpoint_path={folder} holds a run of another configuration: "
                           f"{'; '.join(differences)}; use another --checkpoint_path (or the "
                           f"saved values: --flagfile={storage.join(folder, FLAGS_FILE)})")
    if not saved.get(DATA_DIGEST) and configuration.get(DATA_DIGEST):
      notes.append(f"{path} names no data digest (written before leo kept one): adopting "
                   f"{configuration[DATA_DIGEST][:12]}..., the embeddings at --data_path")
  if saved != configuration:
    storage.atomic_write_checked_json(path, configuration)
  flags_path, flag_text = storage.join(folder, FLAGS_FILE), "\n".join(flag_lines) + "\n"
  if not storage.exists(flags_path) or storage.read_bytes(flags_path) != flag_text.encode():
    storage.atomic_write_text(flags_path, flag_text)
  return notes


def read_config(folder: str):
  return read_checked_json(storage.join(folder, CONFIG_FILE),
                           "the run's configuration: restore it from a copy of the run, or "
                           "train in another --checkpoint_path", CONFIG_SPEC)


def prepare(folder: str):
  """Creates `folder` if needed and checks that files can be written there."""
  try:
    storage.makedirs(folder)
    probe = storage.temporary_name(storage.join(folder, ".write-test"))  # Cleaned if killed.
    storage.atomic_write_text(probe, "ok")
    storage.remove(probe)
  except storage.io_errors() as e:
    reason = getattr(e, "strerror", None) or utils.first_line(e, "?")
    raise utils.LeoError(f"--checkpoint_path={folder}: cannot write there ({reason})") from None


@contextlib.contextmanager
def writing_to(folder: str, cleanups=()):
  """Turns a failed write (disk full, folder gone read-only, a remote store's error) into a
  one-line error, after `cleanups` removed what the failed write left; the previous
  checkpoints stay as they were."""
  try:
    yield
  except storage.io_errors() as e:
    for cleanup in cleanups:
      cleanup()
    raise utils.LeoError(f"--checkpoint_path={folder}: writing failed ({utils.first_line(e)}); "
                         "the previous checkpoints are kept") from None


def versions():
  """The versions that compute a run's numbers."""
  tf = utils.import_tensorflow()
  import sonnet  # pylint: disable=g-import-not-at-top
  import tensorflow_probability  # pylint: disable=g-import-not-at-top
  return {"leo": _git_commit(), "python": platform.python_version(),
          "tensorflow": tf.__version__, "sonnet": sonnet.__version__,
          "tensorflow_probability": tensorflow_probability.__version__,
          "numpy": np.__version__, "machine": platform.machine(),
          "cpu": utils.cpu_model()}


def _git_commit() -> Optional[str]:
  """HEAD of leo's checkout (with "-dirty" if files differ from it), None outside git."""
  try:
    commit = subprocess.run(["git", "-C", utils.REPOSITORY, "rev-parse", "HEAD"], capture_output=True,
                            text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", utils.REPOSITORY, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10, check=True).stdout
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("-dirty" if dirty.strip() else "")


def record_session(folder: str, step: int):
  """Appends this session's versions to versions.json (a resumed run may change them)."""
  sessions = _sessions(folder)
  sessions.append(dict(versions(), started=now(), step=int(step)))
  storage.atomic_write_json(storage.join(folder, VERSIONS_FILE), {"sessions": sessions})


def training_commits(folder: str, step: Optional[int]) -> List[str]:
  """leo's commits (versions.json) of the sessions that trained the run in `folder` up to the
  checkpoint of `step` (those that started before it; all for an unknown step), in order, each
  once; [] where the run has no versions.json. Sessions at other commits compute the same
  math with other float roundings at most, but a run made in one piece is what a reader can
  reproduce."""
  sessions = _sessions(folder)
  trained = [s for s in sessions if step is None or (s.get("step") or 0) < step] or sessions[:1]
  return list(dict.fromkeys(str(s.get("leo")) for s in trained))


def _sessions(folder: str) -> List[dict]:
  """The sessions of the run's versions.json, oldest first; [] where it has none."""
  path = storage.join(folder, VERSIONS_FILE)
  if not storage.exists(path):
    return []
  return storage.read_json(path, "the run's version history: remove it to start a new one",
                           {"sessions": [{"leo": (None, str), "step": (None, int)}]})["sessions"]


def now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---- train.log. ----

class LogFile(logging_lib.Handler):
  """Copies the log lines the run prints into `<run>/train.log`, appending on resume."""

  def __init__(self, folder: str, keep):
    super().__init__()
    self.path = storage.join(folder, LOG_FILE)
    self.setFormatter(logging.PythonFormatter())
    self.addFilter(keep)

  def emit(self, record):
    self.write(self.format(record))

  def write(self, line: str):
    try:
      storage.append_line(self.path, line)
    except storage.io_errors() as e:
      raise utils.LeoError(f"{self.path}: writing failed ({e})") from None


# ---- Checkpoints. ----

def checkpoint_files(prefix: str) -> List[str]:
  """The files of the TF checkpoint `prefix` (its index and data shards)."""
  return sorted(storage.glob(prefix + ".index") + storage.glob(prefix + ".data-?????-of-?????"))


def damage(prefix: str) -> Optional[str]:
  """Why the checkpoint `prefix` cannot be trusted, or None if every tensor reads back
  intact (TF checks each tensor's CRC32C as it reads it)."""
  if not storage.exists(prefix + ".index"):
    return "its .index file is missing"
  try:
    # Not tf.train.load_checkpoint: on ram:// it takes the prefix for a folder.
    reader = utils.import_tensorflow().compat.v1.train.NewCheckpointReader(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # pylint: disable=broad-except
    # TF raises OpError, ValueError, IndexError ("Read less bytes than requested") or
    # RuntimeError depending on where a file is cut or flipped.
    return utils.first_line(e)[:200]
  return None


def write_checkpoint(checkpoint, prefix: str, root: str) -> str:
  """Announces, writes and makes durable `checkpoint` under `prefix`, in `root` (the run
  folder) or below; the caller commits it and then calls `settle(prefix)`. Until then
  `clean_uncommitted` may remove it.

  TF writes `<prefix>.index`, `<prefix>.data-*` and `<prefix>_temp/` itself, following
  links: a link at one of them or between `root` and them is refused first, and a
  `<prefix>_temp/` that a killed write left is removed.
  """
  pending, parts = prefix + PENDING_SUFFIX, prefix + TF_TEMPORARY_SUFFIX
  for path in [pending, parts] + storage.glob(prefix + ".*"):
    storage.refuse_links(path, root)
  storage.remove(parts)
  storage.atomic_write_text(pending, "", root)
  path = checkpoint.write(prefix)
  storage.sync_files(checkpoint_files(prefix))
  return path


def settle(prefix: str):
  """Ends the announcement of `write_checkpoint`, once the checkpoint is committed."""
  storage.remove(prefix + PENDING_SUFFIX)


def clean_uncommitted(folder: str, committed: Optional[Set[str]]):
  """Removes what an interrupted write left in `folder`: leo's temporaries, and the files of
  every announced checkpoint that `committed` (names `model.ckpt-<step>`) does not hold; with
  `committed` None (no state file) announced checkpoints are left for verification. Symbolic
  links are never followed; nothing else is touched."""
  for name in storage.listdir(folder):
    path = storage.join(folder, name)
    if storage.is_link(path):
      continue
    if _PENDING.fullmatch(name) and committed is not None:
      prefix = path[:-len(PENDING_SUFFIX)]
      if os.path.basename(prefix) not in committed:
        for stray in checkpoint_files(prefix) + [prefix + TF_TEMPORARY_SUFFIX]:
          if not storage.is_link(stray):
            storage.remove(stray)
      storage.remove(path)
    elif storage.is_temporary(name) and not storage.isdir(path):
      storage.remove(path)


def move_aside(folder: str, paths: List[str]) -> str:
  """Moves damaged files or folders into `<folder>/damaged/`, keeping every byte."""
  target = storage.join(folder, DAMAGED_FOLDER)
  storage.makedirs(target, folder)
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  for path in paths:
    name = os.path.basename(path.rstrip("/"))
    destination = storage.join(target, name)
    if storage.exists(destination):
      destination = storage.join(target, f"{name}.{stamp}")
    storage.refuse_links(destination, folder)
    storage.rename(path, destination)
  storage.sync(target)
  return target


class Checkpoints:
  """`<run>/model.ckpt-<step>.*` with TF's state file `checkpoint` as the commit point.

  A checkpoint's files are written and fsynced first; then the state file naming it is
  replaced atomically; then checkpoints beyond the newest MAX_CHECKPOINTS_TO_KEEP are deleted.
  `tf.train.latest_checkpoint(<run>)` reads the same state file. `checkpoint` is the
  `tf.train.Checkpoint` saved and restored (None to only read the folder).
  """

  def __init__(self, folder: str, checkpoint, keep: int = MAX_CHECKPOINTS_TO_KEEP):
    self.folder, self.checkpoint, self.keep = folder, checkpoint, keep
    self.state_path = storage.join(folder, STATE_FILE)

  def committed(self) -> List[str]:
    """Names (`model.ckpt-<step>`) of the committed checkpoints, oldest first."""
    if not storage.exists(self.state_path):
      return []
    try:
      text = storage.read_bytes(self.state_path).decode("utf-8")
    except (*storage.io_errors(), UnicodeDecodeError) as e:
      text, reason = None, utils.first_line(e)
    else:
      reason = "expected TF's checkpoint state (model_checkpoint_path: \"...\" lines)"
    entries = re.findall(r'^(model_checkpoint_path|all_model_checkpoint_paths): "([^"\n]+)"$',
                         text or "", re.MULTILINE)
    names = [os.path.basename(path) for key, path in entries if key != "model_checkpoint_path"]
    latest = [os.path.basename(path) for key, path in entries if key == "model_checkpoint_path"]
    if text is None or not latest or (names and names[-1] != latest[0]):
      raise storage.StorageError(
          f"{self.state_path}: damaged ({reason}); it names the latest checkpoint: remove it "
          "and rerun to resume from the newest intact model.ckpt-<step> of the folder")
    return names or latest

  def _on_disk(self) -> List[str]:
    """Checkpoint names with an index file in the folder, by step."""
    steps = []
    for name in storage.listdir(self.folder):
      match = re.fullmatch(re.escape(CHECKPOINT_NAME) + r"-(\d+)\.index", name)
      if match:
        steps.append(int(match.group(1)))
    return [f"{CHECKPOINT_NAME}-{step}" for step in sorted(steps)]

  def _write_state(self, names: List[str]):
    lines = [f'model_checkpoint_path: "{names[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
    storage.atomic_write_text(self.state_path, "\n".join(lines) + "\n")

  def save(self, step: int) -> str:
    """Writes, commits and returns the checkpoint of `step`."""
    name = f"{CHECKPOINT_NAME}-{step}"
    prefix = storage.join(self.folder, name)
    storage.makedirs(self.folder)  # A worker's scratch folder is made by its first save.
    write_checkpoint(self.checkpoint, prefix, self.folder)
    names = [n for n in self.committed() if n != name] + [name]
    self._write_state(names[-self.keep:])
    settle(prefix)
    for old in names[:-self.keep]:
      for path in checkpoint_files(storage.join(self.folder, old)):
        storage.remove(path)
    return prefix

  def clean(self):
    """Deletes what an interrupted save or write left (`clean_uncommitted`), here and in
    `results/`. Without a state file nothing was committed or it was removed by hand:
    checkpoint files are then left for `restore_latest` to verify."""
    committed = set(self.committed()) if storage.exists(self.state_path) else None
    clean_uncommitted(self.folder, committed)
    results = storage.join(self.folder, records.RESULTS_FOLDER)
    if not storage.is_link(results):
      clean_uncommitted(results, set())

  def newest_intact(self):
    """(name of the newest intact checkpoint or None, [(damaged newer name, why)]), reading
    every checkpoint it passes in full; changes nothing.

    Raises:
      StorageError: every committed checkpoint is damaged (a run never silently starts
        again from scratch).
    """
    has_state = storage.exists(self.state_path)
    names = self.committed() if has_state else self._on_disk()
    damaged = []
    for name in reversed(names):
      reason = damage(storage.join(self.folder, name))
      if reason is None:
        return name, damaged
      damaged.append((name, reason))
    if damaged and has_state:
      raise storage.StorageError(
          f"--checkpoint_path={self.folder}: every checkpoint is damaged: "
          f"{_listed(damaged)}; nothing was changed: restore them from a copy, or train in "
          "another --checkpoint_path")
    return None, damaged

  def restore_latest(self, found=None, move_damaged: bool = True) -> Optional[str]:
    """Restores the newest intact checkpoint and returns its prefix (None if there is none).

    Damaged newer ones are moved into `damaged/` with a warning and the state file is
    rewritten to name the intact ones (unless `move_damaged` is False: a worker that only
    reads the folder).

    Args:
      found: what `newest_intact()` returned, if the caller already asked.
      move_damaged: see above.
    """
    name, damaged = found or self.newest_intact()
    if damaged and move_damaged:
      files = [path for bad, _ in damaged
               for path in checkpoint_files(storage.join(self.folder, bad))]
      target = move_aside(self.folder, files)
      logging.warning("Damaged checkpoint%s %s moved to %s; %s", "s" if len(damaged) > 1 else "",
                      _listed(damaged), target, f"resuming from {name}" if name
                      else "no committed checkpoint was lost: starting from step 0")
    if name is None:
      return None
    if move_damaged and (damaged or not storage.exists(self.state_path)):
      names = self.committed() if storage.exists(self.state_path) else self._on_disk()
      self._write_state([n for n in names if n not in dict(damaged)])
    prefix = storage.join(self.folder, name)
    self.checkpoint.read(prefix).assert_existing_objects_matched()
    return prefix


def _listed(damaged) -> str:
  return ", ".join(f"{name} ({reason})" for name, reason in damaged)


class BestCheckpoint:
  """`<run>/best_checkpoint`: the weights with the best validation accuracy so far.

  The folder holds TF checkpoint files `model.ckpt-<step>.*` and `best.json` (step, accuracy,
  checkpoint prefix, configuration). `best.json` is the commit point: new files are written
  under a new prefix and fsynced, then `best.json` is replaced atomically, then older files
  are deleted. A crash or power cut at any instant leaves the old best or the new best, never
  neither nor a mix, and `clean()` removes what an interrupted write left behind.
  """

  INFO = "best.json"

  def __init__(self, folder: str):
    self.folder = folder
    self.root = os.path.dirname(folder.rstrip("/"))  # The run folder, where links are refused.

  @property
  def info(self):
    """The committed `best.json`, checked (`check_info`), or None."""
    path = storage.join(self.folder, self.INFO)
    if not storage.exists(path):
      return None
    what = (f"the best checkpoint's commit record: restore it, or move {self.folder} aside to "
            "let training elect a new best")
    info = read_checked_json(path, what)
    problem = self.check_info(info)
    if problem:
      raise storage.StorageError(f"{path}: damaged ({problem}); it is {what}")
    return info

  def check_info(self, info) -> Optional[str]:
    """What is wrong with a `best.json`'s fields, or None: each must be of its kind and its
    configuration that of the run folder holding it (where there is one)."""
    step, accuracy = info.get("step"), info.get("accuracy")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
      return f"'step' is {step!r}, expected a step >= 0"
    if (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
        or not 0 <= accuracy <= 1):
      return f"'accuracy' is {accuracy!r}, expected an accuracy in [0, 1]"
    if info.get("checkpoint") != f"{CHECKPOINT_NAME}-{step}":
      return f"'checkpoint' is {info.get('checkpoint')!r}, expected '{CHECKPOINT_NAME}-{step}'"
    if not all(isinstance(info.get(name), dict) for name in _SECTIONS):
      return f"expected the configuration's sections {', '.join(_SECTIONS)}"
    run = os.path.dirname(self.folder.rstrip("/"))
    if storage.exists(storage.join(run, CONFIG_FILE)):
      differences = identity_differences(read_config(run), info)
      if differences:
        return (f"its configuration is not that of {storage.join(run, CONFIG_FILE)}: "
                f"{'; '.join(differences)}")
    return None

  @property
  def accuracy(self) -> float:
    info = self.info
    return info["accuracy"] if info else -float("inf")

  @property
  def prefix(self) -> str:
    return storage.join(self.folder, self.info["checkpoint"])

  def damage(self) -> Optional[str]:
    return damage(self.prefix) if self.info else None

  def clean(self):
    """Removes what an interrupted write left (`clean_uncommitted`)."""
    info = self.info
    clean_uncommitted(self.folder, {info["checkpoint"]} if info else set())

  def save(self, checkpoint, step: int, accuracy: float, extra) -> None:
    """Writes `checkpoint` as the new best (the caller checked that it is better)."""
    storage.makedirs(self.folder, self.root)
    self.clean()
    name = f"{CHECKPOINT_NAME}-{step}"
    if self.info and self.info["checkpoint"] == name:
      return  # The same step is already the committed best.
    previous = self.info
    prefix = storage.join(self.folder, name)
    write_checkpoint(checkpoint, prefix, self.root)
    storage.atomic_write_checked_json(storage.join(self.folder, self.INFO),
                                      dict(extra, step=int(step), accuracy=float(accuracy),
                                           checkpoint=name), self.root)
    # TF's own index, so that tf.train.latest_checkpoint(best_checkpoint) works too.
    storage.atomic_write_text(storage.join(self.folder, STATE_FILE),
                              f'model_checkpoint_path: "{name}"\n'
                              f'all_model_checkpoint_paths: "{name}"\n', self.root)
    settle(prefix)
    if previous:
      for path in checkpoint_files(storage.join(self.folder, previous["checkpoint"])):
        storage.remove(path)


# ---- Finding a trained model. ----

class FoundCheckpoint(NamedTuple):
  """A checkpoint to evaluate and what is known of it."""
  prefix: str
  config_json: dict  # The run's configuration (config.json, or best.json which holds it).
  step: Optional[int]  # None where unknown.
  valid_accuracy: Optional[float]  # None where unknown.
  folder: str  # The run folder whose results/ gets the evaluation's record.


def find_checkpoint(path: str) -> FoundCheckpoint:
  """What `--checkpoint_path` names, for an evaluation: a run folder (its best checkpoint),
  a `best_checkpoint` folder, or a checkpoint prefix (`<run>/model.ckpt-20000`)."""
  def run_folder_of(folder):
    parent = os.path.dirname(folder.rstrip("/"))
    return parent if storage.exists(storage.join(parent, CONFIG_FILE)) else folder

  if storage.exists(path + ".index"):
    folder = os.path.dirname(path)
    info = BestCheckpoint(folder).info
    match = re.search(r"-(\d+)$", path)
    accuracy = info["accuracy"] if info and info["checkpoint"] == os.path.basename(path) else None
    return FoundCheckpoint(path, info if info else read_config(folder),
                           int(match.group(1)) if match else None, accuracy,
                           run_folder_of(folder) if info else folder)
  for folder in (path, storage.join(path, BEST_FOLDER)):
    best = BestCheckpoint(folder)
    info = best.info
    if info:
      return FoundCheckpoint(best.prefix, info, info["step"], info["accuracy"],
                             run_folder_of(folder))
  if storage.exists(storage.join(path, CONFIG_FILE)):
    checkpoints = Checkpoints(path, None).committed()
    if checkpoints:
      prefix = storage.join(path, checkpoints[-1])
      return FoundCheckpoint(prefix, read_config(path), int(prefix.rsplit("-", 1)[1]), None,
                             path)
  raise utils.LeoError(
      f"--checkpoint_path={path}: no checkpoint there (expected a run folder with "
      f"{BEST_FOLDER}/ or {CHECKPOINT_NAME}-* files and {CONFIG_FILE}, a {BEST_FOLDER} "
      f"folder, or a checkpoint prefix such as <run>/{CHECKPOINT_NAME}-1000)")


def results_folder(folder: str) -> str:
  """Where an evaluation of the model of run folder `folder` writes its record: the run
  folder, but for a shipped model a new folder of the system's temporary directory, private
  (mode 0700) and of a name no one can foresee, so no link can be planted there first."""
  if not is_below(folder, SHIPPED_MODELS):
    return folder
  return tempfile.mkdtemp(prefix=f"leo-results-{os.path.basename(folder.rstrip('/'))}-")


def check_intact(prefix: str, folder: str):
  """Refuses a damaged checkpoint in one line naming an intact one of `folder` to use."""
  reason = damage(prefix)
  if not reason:
    return
  try:
    committed = Checkpoints(folder, None).committed()
  except storage.StorageError:
    committed = []
  intact = [name for name in committed if not damage(storage.join(folder, name))]
  hint = (f"evaluate a checkpoint prefix instead, e.g. --checkpoint_path="
          f"{storage.join(folder, intact[-1])}" if intact else "restore it from a copy")
  raise storage.StorageError(f"{prefix}: damaged checkpoint ({reason}); {hint}")
