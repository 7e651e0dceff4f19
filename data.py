# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Embeddings on disk -> validated, indexed splits -> seeded episodes."""

import collections

ProblemInstance = collections.namedtuple(
    "ProblemInstance",
    ["tr_input", "tr_output", "tr_info", "val_input", "val_output", "val_info"])
