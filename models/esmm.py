r"""ESMM: Entire Space Multi-task Model (Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
Estimating Post-Click Conversion Rate", SIGIR 2018).

A CTR tower and a CVR tower share only the embedding; CVR is trained through the entire-space product:

.. math::

   p_{CTR} = \sigma(\mathrm{MLP}_{ctr}(x)), \quad p_{CVR} = \sigma(\mathrm{MLP}_{cvr}(x)), \quad
   p_{CTCVR} = p_{CTR} \cdot p_{CVR}, \qquad L = \mathrm{BCE}(p_{CTR}, c) + \mathrm{BCE}(p_{CTCVR}, c \wedge d)

ESMM has no view-through path (conversions without a click): ``xcvr = ctcvr``. It ignores the action label.

With declared tasks (``features.spec.Task``) the same idea runs along each ``after`` chain: one tower per task
predicts it given the task before, and each head is the product along its chain
(:class:`~models.blocks.heads.TaskChainHeads`), trained with BCE over all impressions.
"""

from __future__ import annotations

from models.base import EdgeTowersRanker
from models.config import ModelConfig


class ESMM(EdgeTowersRanker):
    config_class = ModelConfig
    reference = "Ma et al., Entire Space Multi-Task Model (ESMM), SIGIR 2018"
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 1, "weighting": {"strategy": "gradnorm"}}
    supports_action = False
    has_unclick_edge = False
    default_supervised = ("ctr", "ctcvr")
