"""Worker tests share two CPU cores: one intra-op thread per test process."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
