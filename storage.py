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

Every file leo writes goes through one writer (`AtomicFile`, and `atomic_write`,
`append_line` on it): it refuses a symbolic link at the file and at every folder between it
and the folder leo owns (`refuse_links`), and creates its temporary file anew, so no write
ever lands where a link points. Every file leo reads goes through one reader (`reading`,
`read_bytes`, `read_json`, `parse_json`): regular files only (a FIFO or a device is refused
before it is read), up to a size; JSON up to a depth, each field of the type it must have
(`field_problem`).
"""

import contextlib
import glob as glob_lib
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import sys
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from absl import logging
import numpy as np

import utils

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Windows: leo runs, but cannot detect a second run on a folder.
  fcntl = None


class StorageError(utils.LeoError):
  """A file that is missing, unreadable or damaged, named with what to do about it."""


# The marker of leo's temporary files: `<name>.leo-tmp-<pid>`. Clean-ups remove only names
# that carry it, so a user's `notes.tmp` or `config.json.tmp-1` is never taken for one.
TEMPORARY_MARKER = ".leo-tmp-"
_TEMPORARY = re.compile(r".+" + re.escape(TEMPORARY_MARKER) + r"\d+")
FILE_SCHEME = "file://"
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no such flag.
_NON_BLOCKING = getattr(os, "O_NONBLOCK", 0)  # Opening a FIFO then waits for no writer.


def temporary_name(path: str) -> str:
  return f"{path}{TEMPORARY_MARKER}{os.getpid()}"


def is_temporary(name: str) -> bool:
  """Whether `name` is a temporary file of leo's: it carries TEMPORARY_MARKER."""
  return bool(_TEMPORARY.fullmatch(name))


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


def makedirs(path: str, root: Optional[str] = None):
  """Makes the folder `path` and those above it; with `root`, refuses a symbolic link between
  `root` and it (`refuse_links`)."""
  if root is not None:
    refuse_links(path, root)
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


def walk(folder: str) -> Iterator[Tuple[str, List[str]]]:
  """(folder, its file names) for `folder` and each folder below it, in sorted order, hidden
  names (`.git`, `.venv`) aside. A symbolic link to a folder is never followed, so the walk
  visits each folder once however links point (`a -> ..` loops no walk)."""
  if not is_local(folder):
    for path, folders, files in _gfile().walk(folder):
      folders[:] = sorted(name.rstrip("/") for name in folders if not name.startswith("."))
      yield path, sorted(name for name in files if not name.startswith("."))
    return
  def fail(error: OSError):
    raise StorageError(f"{error.filename}: unreadable ({error.strerror})")
  for path, folders, files in os.walk(_os_path(folder), onerror=fail):
    folders[:] = sorted(name for name in folders if not name.startswith("."))
    yield path, sorted(name for name in files if not name.startswith("."))


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


def reason(error: BaseException) -> str:
  """Why a file operation failed, in a few words: the system's (No such file or directory)."""
  return getattr(error, "strerror", None) or utils.first_line(error)


# ---- Reading: regular files only, up to a size; JSON up to a depth, of the expected types. ----

# The most leo reads of a file it reads whole (a record, a tasks file, a run's configuration):
# far more than any file leo writes of these kinds, far less than the memory of a machine that
# trains. A link to /dev/zero or a runaway file is refused before it is read.
MAX_FILE_BYTES = 256 * 2**20
# Deeper JSON than leo's files ever are (a record nests 4 levels) is refused before it is
# parsed: Python's parser recurses once per level.
MAX_JSON_DEPTH = 32
_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


@contextlib.contextmanager
def reading(path: str, limit: Optional[int] = MAX_FILE_BYTES):
  """The regular file `path`, open for reading bytes.

  Raises:
    StorageError: `path` is not a regular file (a folder, a FIFO, a device: refused before a
      byte is read, so it never blocks), or it holds more than `limit` bytes.
    OSError, tf.errors.OpError: it cannot be opened.
  """
  if is_local(path):
    file = os.fdopen(os.open(_os_path(path), os.O_RDONLY | _NON_BLOCKING), "rb")
    status = os.fstat(file.fileno())
    kind = next((kind for is_kind, kind in _FILE_KINDS if is_kind(status.st_mode)),
                None if stat.S_ISREG(status.st_mode) else "a special file")
    size = status.st_size
  else:
    kind = "a folder" if _reachable(_gfile().isdir, path) else None
    file = None if kind else _gfile().GFile(path, "rb")
    size = 0 if kind else _reachable(_gfile().stat, path).length
  try:
    if kind:
      raise StorageError(f"{path}: {kind}, not a regular file; leo reads only regular files")
    if limit is not None and size > limit:
      raise StorageError(f"{path}: {size:,} bytes, more than the {limit:,} leo reads of such "
                         "a file")
    yield file
  finally:
    if file is not None:
      file.close()


def read_bytes(path: str, limit: Optional[int] = MAX_FILE_BYTES) -> bytes:
  """The bytes of the regular file `path` (see `reading`)."""
  with reading(path, limit) as file:
    return file.read()


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def json_depth(text: str) -> int:
  """How deeply the arrays and objects of the JSON `text` nest (brackets in strings aside):
  exact above MAX_JSON_DEPTH, a bound below it (all a check needs)."""
  if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
    return text.count("[") + text.count("{")
  codes = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
  steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
           - np.isin(codes, (ord("]"), ord("}"))))
  return int(np.cumsum(steps).max(initial=0))


def _described(spec) -> str:
  if isinstance(spec, tuple):
    return " or ".join(_described(option) for option in spec)
  if isinstance(spec, dict):
    return "an object"
  if isinstance(spec, list):
    items = _described(spec[0])
    return "an array" if " or " in items else f"an array of {items.split(' ', 1)[1]}s"
  return {None: "null", str: "a string", int: "an integer", float: "a number",
          bool: "true or false", dict: "an object", list: "an array"}[spec]


def _matches(value, kind) -> bool:
  """isinstance for JSON values: a bool is no number, an integer is a number (float)."""
  if kind is None:
    return value is None
  if isinstance(value, bool):
    return kind is bool
  return isinstance(value, (int, float) if kind is float else kind)


def field_problem(value, spec, name: str = "") -> Optional[str]:
  """Why the JSON `value` does not have the form `spec`, or None.

  A spec is a type (str, int, float for any number, bool, dict, list), None (null), a tuple
  of specs (any one of them), a dict {field: spec} (an object whose fields have their specs;
  a missing field is null, so a field whose spec allows None is optional) or a list [spec]
  (an array whose every item has the spec). `name` is the value's place: `trained.step`.
  """
  if isinstance(spec, tuple):
    if any(field_problem(value, option) is None for option in spec):
      return None
    # A container of the right kind but wrong insides: say what is wrong inside it.
    inner = [option for option in spec if isinstance(option, (dict, list))
             and isinstance(value, type(option))]
    if inner:
      return field_problem(value, inner[0], name)
  elif isinstance(spec, dict) and isinstance(value, dict):
    for field, field_spec in spec.items():
      place = f"{name}.{field}" if name else field
      if field not in value and field_problem(None, field_spec) is not None:
        return f"{place!r} is missing, expected {_described(field_spec)}"
      problem = field_problem(value.get(field), field_spec, place)
      if problem:
        return problem
    return None
  elif isinstance(spec, list) and isinstance(value, list):
    return next(filter(None, (field_problem(item, spec[0], f"{name}[{index}]")
                              for index, item in enumerate(value))), None)
  elif not isinstance(spec, (dict, list)) and _matches(value, spec):
    return None
  shown = json.dumps(value, default=repr)
  shown = shown if len(shown) <= 40 else shown[:37] + "..."
  if not name:
    return f"expected {_described(spec)}, found {shown}"
  return f"{name!r} is {shown}, expected {_described(spec)}"


def parse_json(contents, where: str, what: str, spec=None):
  """The JSON value of `contents` (bytes or text) from `where` (a file, `<file>: line 3`).

  Raises:
    StorageError: one line naming `where` and saying what it is (`what`): the contents are not
      UTF-8 JSON, nest deeper than MAX_JSON_DEPTH, or (with `spec`) are not of its form
      (`field_problem`).
  """
  try:
    text = contents.decode("utf-8") if isinstance(contents, bytes) else contents
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
      raise ValueError(f"nested {depth} levels deep, more than the {MAX_JSON_DEPTH} leo reads")
    value = json.loads(text)
  except ValueError as e:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors.
    raise StorageError(f"{where}: damaged or unreadable ({utils.first_line(e)}); it is "
                       f"{what}") from None
  problem = field_problem(value, spec) if spec is not None else None
  if problem:
    raise StorageError(f"{where}: {problem}; it is {what}")
  return value


def read_json(path: str, what: str, spec=None):
  """The JSON object in the file `path`, of the form `spec` (default: any object); a missing,
  truncated, garbled, oversized or misshapen file is one `StorageError` line that names it and
  says what the file is (`what`)."""
  try:
    contents = read_bytes(path)
  except io_errors() as e:
    raise StorageError(f"{path}: damaged or unreadable ({reason(e)}); it is {what}") from None
  return parse_json(contents, path, what, dict if spec is None else spec)


# ---- Writing: one writer, durable, never through a symbolic link. ----

def refuse_links(path: str, root: Optional[str] = None):
  """Refuses a symbolic link at `path` or at any folder between `root` (the folder leo owns;
  default: the one holding `path`) and it: a write there would land where the link points.
  `root` itself may be a link (the user chose it). Only a local file system has links.
  The check precedes each write: a folder that others change while leo writes in it is no
  place for leo's files.

  Raises:
    StorageError: one line naming the link and where it points.
  """
  if not is_local(path):
    return
  local = _os_path(path)
  top = _os_path(root) if root is not None else os.path.dirname(local) or os.curdir
  relative = os.path.relpath(local, top)
  if relative == os.pardir or relative.startswith(os.pardir + os.sep):
    raise ValueError(f"{path} is not below {root}")
  current = top
  for part in relative.split(os.sep):
    current = os.path.join(current, part)
    if part != os.curdir and os.path.islink(current):
      raise StorageError(f"{current}: a symbolic link (to {os.readlink(current)}); leo never "
                         "writes through a link: replace it by a file or folder of its own, "
                         "or choose another path")


class AtomicFile:
  """A file written in parts and committed whole: leo's one writer of a whole file.

  `path` keeps its old contents (or stays absent) until `commit`, which makes the new ones
  durable and then renames them into place; `discard` (and any failed write) removes them.
  They are written to `temporary_name(path)`, created anew, so never through a link nor into
  another's file; a link at `path` or between `root` and it is refused (`refuse_links`).

  Raises:
    StorageError: a symbolic link (on creation).
    OSError, tf.errors.OpError: the file system's failure (a missing folder, a full disk).
  """

  def __init__(self, path: str, root: Optional[str] = None):
    refuse_links(path, root)
    self.path, self._temporary = path, temporary_name(path)
    remove(self._temporary)  # Left by a killed process of the same pid: ram:// would append.
    if is_local(path):
      self._file = os.fdopen(os.open(_os_path(self._temporary),
                                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o666),
                             "wb")
    else:
      self._file = _gfile().GFile(self._temporary, "wb")

  def write(self, contents: bytes):
    try:
      self._file.write(contents)
    except BaseException:
      self.discard()
      raise

  def commit(self):
    try:
      self._file.flush()
      sync(self._temporary, self._file.fileno() if is_local(self.path) else None)
      self._file.close()
      rename(self._temporary, self.path)
    except BaseException:
      self.discard()
      raise
    sync_files([self.path])

  def discard(self):
    try:
      self._file.close()
      remove(self._temporary)
    except io_errors():
      pass  # The write's own error says more.


# Called with every path whose data is made durable, in order: tests record the commit order.
sync_observers: List[Callable[[str], None]] = []


def sync(path: str, descriptor: Optional[int] = None):
  """Makes `path` (a file or a folder; open as `descriptor`, if given) durable: fsync on a
  local file system.

  Elsewhere a closed object is already stored, so there is nothing to do.
  """
  for observer in sync_observers:
    observer(path)
  if not is_local(path):
    return
  if descriptor is not None:
    os.fsync(descriptor)
    return
  path = _os_path(path)
  flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
  try:
    descriptor = os.open(path, flags | _NON_BLOCKING)
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


def atomic_write(path: str, contents: bytes, root: Optional[str] = None):
  """Writes `path` so that it holds its old or its new contents, never a mix or nothing,
  and the new contents are on disk before the name points at them (`AtomicFile`; `root`:
  the folder leo owns, below which no link is followed)."""
  file = AtomicFile(path, root)
  file.write(contents)
  file.commit()


def atomic_write_json(path: str, contents, root: Optional[str] = None):
  atomic_write(path, (json.dumps(contents, indent=2, sort_keys=True) + "\n").encode("utf-8"),
               root)


def atomic_write_text(path: str, text: str, root: Optional[str] = None):
  atomic_write(path, text.encode("utf-8"), root)


CHECKSUM_FIELD = "checksum"


def _checksum(contents) -> str:
  return "sha256:" + hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()


def atomic_write_checked_json(path: str, contents, root: Optional[str] = None):
  """`atomic_write_json` with a checksum of the contents in the field CHECKSUM_FIELD: a
  damaged byte that still parses (a key, a digit) is caught by `read_checked_json`."""
  atomic_write_json(path, dict(contents, **{CHECKSUM_FIELD: _checksum(contents)}), root)


def read_checked_json(path: str, what: str, spec=None, required: bool = False):
  """The JSON object of `atomic_write_checked_json` (of the form `spec`, see `read_json`),
  checksum verified and removed. A file written before leo kept checksums has none and is
  taken as it is, unless its checksum is `required` (a file leo ships with one)."""
  contents = read_json(path, what, spec)
  recorded = contents.pop(CHECKSUM_FIELD, None)
  if recorded is None and required:
    raise StorageError(f"{path}: no checksum, but leo ships it with one: it was edited; "
                       f"restore it (git checkout {path}); it is {what}")
  if recorded is not None and recorded != _checksum(contents):
    raise StorageError(f"{path}: damaged (its contents do not match its checksum); it is "
                       f"{what}")
  return contents


def append_line(path: str, line: str, root: Optional[str] = None):
  """Appends one line and makes it durable, never through a link (`refuse_links`). A crash
  can leave a torn last line, which readers skip; on file systems without append the file is
  rewritten whole."""
  data = (line.rstrip("\n") + "\n").encode("utf-8")
  if is_local(path):
    with appending(path, root) as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  else:
    atomic_write(path, (read_bytes(path, None) if exists(path) else b"") + data)


def appending(path: str, root: Optional[str] = None):
  """The local file `path` open for appending bytes (made if missing), never through a link
  at it or between `root` and it (`refuse_links`)."""
  refuse_links(path, root)
  flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NO_FOLLOW
  return os.fdopen(os.open(_os_path(path), flags, 0o666), "ab")


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
