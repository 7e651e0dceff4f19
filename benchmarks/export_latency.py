# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""A trained LEO's SavedModel (tools/export.py) against predict.py: loading and adapting.

    python -m benchmarks.export_latency [--repeats=3] [--calls=20]

On 10 support images (5 test classes of the bundled icons, 2 each) and 20 queries, with the
model predict.py picks for them (the shipped 5-shot one):

- whole processes, alternately `--repeats` times: `predict.py` and a Python without leo
  (`-I`) that loads the export, reads the same PNG files and calls `from_images`;
- in one process: `Predictor.load` with its backbone against `tf.saved_model.load`, then one
  adaptation (embedding included), the first call and the median of `--calls` calls, the two
  interleaved.

Prints the rows of BENCHMARKS.md's table.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

import utils

flags.DEFINE_integer("repeats", 3, "Runs of each command.")
flags.DEFINE_integer("calls", 20, "Adaptations timed in process, of each.")
FLAGS = flags.FLAGS

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES, SHOTS, QUERIES_PER_CLASS = 5, 2, 4
# What a user of the export writes: TensorFlow alone, the PNG files read as predict.py reads
# them (sorted class folders; grayscale at the backbone's size).
_WITHOUT_LEO = """
import sys, tensorflow as tf
leo = tf.saved_model.load(sys.argv[1])
png = lambda pattern: tf.stack([tf.io.decode_png(tf.io.read_file(f), 1) for f in sorted(tf.io.gfile.glob(pattern))])
support = tf.reshape(png(sys.argv[2] + "/*/*.png"), [%d, %d, 84, 84, 1])
print(leo.from_images(support=support, queries=png(sys.argv[3] + "/*.png"))["predicted"].numpy())
""" % (CLASSES, SHOTS)


def write_pngs(folder: str, tf):
  """The support folder (a sub-folder per class) and the queries folder, as PNG files; their
  images, uint8 [N, K, 84, 84, 1] and [N * V, 84, 84, 1]."""
  import json  # pylint: disable=g-import-not-at-top
  icons = np.load(os.path.join(_HERE, "datasets", "icons", "icons.npz"))
  names = list(icons["class_names"])
  with open(os.path.join(_HERE, "datasets", "icons", "split.json")) as f:
    test_classes = json.load(f)["test"][:CLASSES]
  support, queries = [], []
  for name in test_classes:
    rows = np.flatnonzero(icons["labels"] == names.index(name))[:SHOTS + QUERIES_PER_CLASS]
    for i, row in enumerate(rows):
      image = icons["images"][row][..., None]
      path = (os.path.join(folder, "support", name, f"{i}.png") if i < SHOTS else
              os.path.join(folder, "queries", f"{name}-{i}.png"))
      tf.io.write_file(path, tf.io.encode_png(image))
      (support if i < SHOTS else queries).append(image)
  return (np.stack(support).reshape(CLASSES, SHOTS, 84, 84, 1), np.stack(queries),
          os.path.join(folder, "support"), os.path.join(folder, "queries"))


def seconds(command, cwd) -> float:
  start = time.perf_counter()
  subprocess.run(command, cwd=cwd, capture_output=True, check=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  return time.perf_counter() - start


def timed(call):
  start = time.perf_counter()
  call()
  return time.perf_counter() - start


def main(argv):
  del argv
  tf = utils.import_tensorflow()
  import exporting  # pylint: disable=g-import-not-at-top
  import prediction  # pylint: disable=g-import-not-at-top
  load_before = os.getloadavg()[0]
  with tempfile.TemporaryDirectory() as scratch:
    support, queries, support_folder, queries_folder = write_pngs(scratch, tf)
    export = os.path.join(scratch, "export")
    export_seconds = timed(lambda: exporting.export(prediction.SHIPPED_5SHOT, export))
    commands = {
        "predict.py": [sys.executable, os.path.join(_HERE, "predict.py"),
                       f"--support={support_folder}", f"--queries={queries_folder}"],
        "export": [sys.executable, "-I", "-c", _WITHOUT_LEO, export, support_folder,
                   queries_folder]}
    runs = {name: [] for name in commands}
    for _ in range(FLAGS.repeats):
      for name, command in commands.items():
        runs[name].append(seconds(command, scratch))

    predictor = None
    def load_predictor():
      nonlocal predictor
      predictor = prediction.Predictor.load(prediction.SHIPPED_5SHOT)
      predictor.loaded_backbone()
    loads = {"predictor": timed(load_predictor)}
    loaded = None
    def load_export():
      nonlocal loaded
      loaded = tf.saved_model.load(export)
    loads["export"] = timed(load_export)
    adapt = {
        "predictor": lambda: predictor.predict(
            predictor.embed(support.reshape(-1, 84, 84, 1)).reshape(CLASSES, SHOTS, -1),
            predictor.embed(queries)),
        "export": lambda: loaded.from_images(support=support, queries=queries)[
            "probabilities"].numpy()}
    first = {name: timed(call) for name, call in adapt.items()}
    calls = {name: [] for name in adapt}
    for _ in range(FLAGS.calls):
      for name, call in adapt.items():
        calls[name].append(timed(call))
  median = {name: statistics.median(values) for name, values in calls.items()}
  whole = {name: statistics.median(values) for name, values in runs.items()}
  print(f"CPU: {utils.cpu_model()}; load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; export written in {export_seconds:.1f} s")
  rows = [
      ("predict.py, 10 support images, 20 queries (whole process)", f"{whole['predict.py']:.1f} s",
       "runs " + ", ".join(f"{x:.1f}" for x in runs["predict.py"])),
      ("the export in a Python without leo, the same (whole process)", f"{whole['export']:.1f} s",
       "runs " + ", ".join(f"{x:.1f}" for x in runs["export"])),
      ("Predictor.load with its backbone", f"{loads['predictor']:.2f} s", ""),
      ("tf.saved_model.load of the export", f"{loads['export']:.2f} s", ""),
      ("Predictor: one adaptation (embed 30 images, adapt, classify)",
       f"{1000 * median['predictor']:.1f} ms", f"first call {first['predictor']:.2f} s"),
      ("the export's from_images: one adaptation, the same",
       f"{1000 * median['export']:.1f} ms", f"first call {first['export']:.2f} s"),
  ]
  print("| measurement | value | notes |\n|---|---|---|")
  for row in rows:
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
  app.run(main)
