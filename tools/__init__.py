# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Command-line tools that build leo's bundled benchmark (run them with `python -m tools.X`)."""
