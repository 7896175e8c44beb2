"""Plain-torch helper functions copied verbatim into generated files when an op needs one.

Each helper is an ordinary, tested function here; ``Ctx.helper(name)`` copies its source (and
the helpers it lists in ``_nnport_deps``) into the generated module.  Helpers use only ``torch``,
``F`` (torch.nn.functional), ``math`` and ``List``/``Optional`` names the generated file imports.
Their names start with an underscore so they never clash with the model's own names.
"""
from __future__ import annotations

import math  # noqa: F401  (available to helpers, as in generated files)
from typing import List, Optional  # noqa: F401

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401

from .h_basic import *  # noqa: F401,F403
from .h_rnn import *  # noqa: F401,F403
from .h_cnn import *  # noqa: F401,F403
from .h_math import *  # noqa: F401,F403
from .h_tensor import *  # noqa: F401,F403
from .h_resize import *  # noqa: F401,F403
from .h_quant import *  # noqa: F401,F403
from .h_detect import *  # noqa: F401,F403
