# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Studying results: records compared, LEO beside the baselines, checkpoints inspected."""
