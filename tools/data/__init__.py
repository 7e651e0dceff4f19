# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Making data and backbones: the bundled image sets, pretraining, embedding images."""
