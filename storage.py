# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Files on any file system TensorFlow has, written so that a crash or power cut cannot
leave a commit point naming data that is not on disk.

Local paths (and `file://...`) go through Python's own `os` and `open`; every other one
(`gs://...`, `ram://...` in the tests) through `tf.io.gfile`, as the original's `tf.gfile`
did, with TensorFlow imported at the first such path: a command that reads and writes local
files only never loads it. Local files get what only a local file system can give: data and
folder `fsync` before the commit that names them, `os.replace` as the atomic commit, and
process locks. On other file systems an object is whole once its write is closed; a rename
there may be a copy, so the commit point is written last.
"""

import glob as glob_lib
import hashlib
import json
import os
import posixpath
import re
import shutil
import sys
from typing import Callable, Iterable, List

from absl import logging

import utils

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Windows: leo runs, but cannot detect a second run on a folder.
  fcntl = None


class StorageError(utils.LeoError):
  """A file that is missing, unreadable or damaged, named with what to do about it."""


# The marker of leo's temporary files: `<name>.leo-tmp-<pid>`. Clean-ups remove only names
# that carry it (and `<name>.tmp-<pid>`, what leo before it wrote, for leo's own names), so a
# user's `notes.tmp` is never taken for one.
TEMPORARY_MARKER = ".leo-tmp-"
_TEMPORARY = re.compile(r".+" + re.escape(TEMPORARY_MARKER) + r"\d+")
FILE_SCHEME = "file://"
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no such flag.


def temporary_name(path: str) -> str:
  return f"{path}{TEMPORARY_MARKER}{os.getpid()}"


def is_temporary(name: str, own_names=()) -> bool:
  """Whether `name` is a temporary file of leo's: marked, or an older leo's `<own>.tmp-<pid>`
  for one of `own_names`."""
  if _TEMPORARY.fullmatch(name):
    return True
  base, _, pid = name.rpartition(".tmp-")
  return base in own_names and pid.isdigit()


def is_local(path: str) -> bool:
  return "://" not in path or path.startswith(FILE_SCHEME)


def _os_path(path: str) -> str:
  """The operating system's name of a local path (`file:///x` is `/x`)."""
  return path[len(FILE_SCHEME):] if path.startswith(FILE_SCHEME) else path


def _gfile():
  """`tf.io.gfile`, for a path that is not local: TensorFlow is imported at the first."""
  return utils.import_tensorflow().io.gfile


def io_errors() -> tuple:
  """What a failed file operation raises, for `except storage.io_errors():`: OSError, and
  TensorFlow's OpError once TensorFlow is loaded (nothing raises it before)."""
  tensorflow = sys.modules.get("tensorflow")
  return (OSError, tensorflow.errors.OpError) if tensorflow else (OSError,)


def join(*parts: str) -> str:
  # os.path.join would use '\\' for a gs:// path on Windows.
  return os.path.join(*parts) if is_local(parts[0]) else posixpath.join(*parts)


def _reachable(query, path: str):
  """`query(path)` of `tf.io.gfile`, an object store's failure (no network, no such bucket, no
  credentials) being one line naming the path."""
  try:
    return query(path)
  except utils.import_tensorflow().errors.OpError as e:
    raise StorageError(f"{path}: unreachable ({utils.first_line(e)})") from None


def exists(path: str) -> bool:
  return os.path.exists(_os_path(path)) if is_local(path) else _reachable(_gfile().exists, path)


def isdir(path: str) -> bool:
  return os.path.isdir(_os_path(path)) if is_local(path) else _reachable(_gfile().isdir, path)


def is_link(path: str) -> bool:
  """Whether `path` is a symbolic link (only a local file system has them)."""
  return is_local(path) and os.path.islink(_os_path(path))


def makedirs(path: str):
  if is_local(path):
    os.makedirs(_os_path(path), exist_ok=True)
  else:
    _gfile().makedirs(path)


def listdir(path: str) -> List[str]:
  """The names in the folder `path`; [] where there is no folder."""
  if not isdir(path):
    return []
  if not is_local(path):
    return [name.rstrip("/") for name in _reachable(_gfile().listdir, path)]
  try:
    return os.listdir(_os_path(path))
  except OSError as e:
    raise StorageError(f"{path}: unreadable ({e.strerror})") from None


def glob(pattern: str) -> List[str]:
  """The paths that match `pattern` (`*`, `?` and `[...]` within a name)."""
  return glob_lib.glob(_os_path(pattern)) if is_local(pattern) else _gfile().glob(pattern)


def remove(path: str):
  """Deletes a file or a folder tree, if it exists; a symbolic link is removed, never what
  it points to (nor what a link inside the tree points to)."""
  if is_local(path):
    local = _os_path(path)
    if os.path.isdir(local) and not os.path.islink(local):
      shutil.rmtree(local)
    elif os.path.lexists(local):
      os.remove(local)
  elif isdir(path):
    _gfile().rmtree(path)
  elif exists(path):
    _gfile().remove(path)


def rename(source: str, target: str):
  """Renames `source` to `target`, replacing a file there."""
  if is_local(source):
    os.replace(_os_path(source), _os_path(target))
  else:
    _gfile().rename(source, target, overwrite=True)


def read_bytes(path: str) -> bytes:
  if is_local(path):
    with open(_os_path(path), "rb") as f:
      return f.read()
  with _gfile().GFile(path, "rb") as f:
    return f.read()


def _write(path: str, contents: bytes):
  if is_local(path):
    with open(_os_path(path), "wb") as f:
      f.write(contents)
  else:
    with _gfile().GFile(path, "wb") as f:
      f.write(contents)


# ---- Durable writes. ----

# Called with every path whose data is made durable, in order: tests record the commit order.
sync_observers: List[Callable[[str], None]] = []


def sync(path: str):
  """Makes `path` (a file or a folder) durable: fsync on a local file system.

  Elsewhere a closed object is already stored, so there is nothing to do.
  """
  for observer in sync_observers:
    observer(path)
  if not is_local(path):
    return
  path = _os_path(path)
  flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
  try:
    descriptor = os.open(path, flags)
  except OSError:  # Windows cannot open a folder; its NTFS journals metadata anyway.
    return
  try:
    os.fsync(descriptor)
  finally:
    os.close(descriptor)


def sync_files(paths: Iterable[str]):
  """fsync each file, then the folders that hold them (so their names are durable too)."""
  folders = []
  for path in paths:
    sync(path)
    folder = os.path.dirname(path) if is_local(path) else posixpath.dirname(path)
    if folder not in folders:
      folders.append(folder)
  for folder in folders:
    sync(folder or ".")


def atomic_write(path: str, contents: bytes):
  """Writes `path` so that it holds its old or its new contents, never a mix or nothing,
  and the new contents are on disk before the name points at them. A write that fails (a
  full disk) leaves the old file and removes its temporary one."""
  tmp = temporary_name(path)
  remove(tmp)  # Left by a killed process of the same pid: ram:// would append to it.
  try:
    _write(tmp, contents)
    sync(tmp)
    rename(tmp, path)
  except BaseException:
    try:
      remove(tmp)
    except io_errors():
      pass  # The write's own error says more.
    raise
  sync_files([path])


def atomic_write_json(path: str, contents):
  atomic_write(path, (json.dumps(contents, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def atomic_write_text(path: str, text: str):
  atomic_write(path, text.encode("utf-8"))


CHECKSUM_FIELD = "checksum"


def _checksum(contents) -> str:
  return "sha256:" + hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()


def atomic_write_checked_json(path: str, contents):
  """`atomic_write_json` with a checksum of the contents in the field CHECKSUM_FIELD: a
  damaged byte that still parses (a key, a digit) is caught by `read_checked_json`."""
  atomic_write_json(path, dict(contents, **{CHECKSUM_FIELD: _checksum(contents)}))


def read_checked_json(path: str, what: str):
  """The JSON object of `atomic_write_checked_json`, checksum verified and removed. A file
  written before leo kept checksums has none and is taken as it is."""
  contents = read_json(path, what)
  recorded = contents.pop(CHECKSUM_FIELD, None)
  if recorded is not None and recorded != _checksum(contents):
    raise StorageError(f"{path}: damaged (its contents do not match its checksum); it is "
                       f"{what}")
  return contents


def read_json(path: str, what: str):
  """The JSON object in `path`; a missing, truncated or garbled file is one `StorageError`
  line that names it and says what the file is (`what`)."""
  try:
    contents = json.loads(read_bytes(path).decode("utf-8"))
  except (*io_errors(), UnicodeDecodeError, ValueError) as e:
    # A local file's OSError repeats the path; its strerror alone is what the line lacks.
    reason = getattr(e, "strerror", None) or utils.first_line(e)
    raise StorageError(f"{path}: damaged or unreadable ({reason}); it is {what}") from None
  if not isinstance(contents, dict):
    raise StorageError(f"{path}: expected a JSON object, found {type(contents).__name__}; "
                       f"it is {what}")
  return contents


def append_line(path: str, line: str):
  """Appends one line and makes it durable. A crash can leave a torn last line, which
  readers skip; on file systems without append the file is rewritten whole."""
  data = (line.rstrip("\n") + "\n").encode("utf-8")
  if is_local(path):
    with open(_os_path(path), "ab") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  else:
    atomic_write(path, (read_bytes(path) if exists(path) else b"") + data)


# ---- Locks: one process at a time. ----

class LockHeld(utils.LeoError):
  """A `FileLock` that another process holds (`holder`: "pid 123", as its file says)."""

  def __init__(self, path: str, holder: str):
    super().__init__(f"{path}: locked by {holder}")
    self.holder = holder


class FileLock:
  """An exclusive lock on the local file `path` (made if missing), released on exit or when
  the process ends however it ends. Its file is never opened through a symbolic link, since
  taking the lock writes `pid <pid>` in it for whoever finds it held. Needs fcntl.

  Raises on entry:
    LockHeld: another process (or another FileLock of this one) holds it, unless `wait`:
      then entry waits for it to be released.
    OSError: the file cannot be opened (ELOOP: a symbolic link there).
  """

  def __init__(self, path: str, wait: bool = False):
    self.path, self.wait = path, wait
    self._file = None

  def __enter__(self):
    descriptor = os.open(_os_path(self.path), os.O_RDWR | os.O_CREAT | _NO_FOLLOW, 0o644)
    file = os.fdopen(descriptor, "r+")
    try:
      fcntl.flock(file, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = file.read().strip() or "another process"
      file.close()
      raise LockHeld(self.path, holder) from None
    file.truncate()
    file.write(f"pid {os.getpid()}")
    file.flush()
    self._file = file
    return self

  def __exit__(self, *unused_exc):
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None


def is_locked(path: str) -> bool:
  """Whether a process holds the `FileLock` of `path`; False where there is no such file.
  Looking takes a shared lock for an instant, so lookers never block one another."""
  try:
    descriptor = os.open(_os_path(path), os.O_RDONLY | _NO_FOLLOW)
  except FileNotFoundError:
    return False
  with os.fdopen(descriptor) as file:
    try:
      fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
      return True
  return False


IN_MEMORY_SCHEME = "ram://"  # TF's in-memory file system: gone when the process ends.


class RunLock:
  """An exclusive lock on a run folder (its file `.lock`), released when the process ends
  however it ends.

  Only a local file system can be locked: on an object store (`gs://`) or without `fcntl`
  (Windows) leo warns once that a second run on the same folder is not detected.
  """

  NAME = ".lock"

  def __init__(self, folder: str):
    self.folder = folder
    self.path = join(folder, self.NAME)
    self._lock = None

  def __enter__(self):
    if not is_local(self.folder) or fcntl is None:
      why = ("this file system has no locks" if not is_local(self.folder) else
             f"{sys.platform} has no fcntl")
      transient = (f"; {IN_MEMORY_SCHEME} is this process's memory: nothing written there "
                   "(checkpoints, the best model, records) outlives the process"
                   if self.folder.startswith(IN_MEMORY_SCHEME) else "")
      logging.warning("--checkpoint_path=%s: not locked (%s); two runs on this folder would "
                      "not be detected%s", self.folder, why, transient)
      return self
    lock = FileLock(self.path)
    try:
      lock.__enter__()
    except LockHeld as e:
      raise utils.LeoError(f"--checkpoint_path={self.folder}: another leo run ({e.holder}) is "
                           "using this folder; wait for it or choose another folder") from None
    except OSError as e:
      raise utils.LeoError(f"--checkpoint_path={self.folder}: cannot open its lock "
                           f"{self.path} ({e.strerror}); a symbolic link there is refused: "
                           "remove it") from None
    self._lock = lock
    return self

  def __exit__(self, *exc):
    if self._lock is not None:
      self._lock.__exit__(*exc)
