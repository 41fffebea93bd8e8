r"""ESM2: Elaborated Entire Space Supervised Multi-task Model (Wen et al., "Entire Space Multi-Task Modeling
via Post-Click Behavior Decomposition for Conversion Rate Prediction", SIGIR 2020).

The post-click path is decomposed by a related action (ESM2's deterministic action, e.g. add-to-cart):
towers share the embedding and predict y1 = P(click | imp), y4 = P(action | click),
y5 = P(buy | action) and y2 = P(buy | click, no action):

.. math::

   p_{CTR} = y_1, \quad p_{CTAVR} = y_1 y_4, \quad p_{CTCVR} = y_1 [y_4 y_5 + (1 - y_4) y_2]

trained with BCE on ctr, ctavr and ctcvr over all impressions. There is no view-through path
(``xcvr = ctcvr``). Without an action label in the spec the decomposition is unavailable and ESM2 reduces to ESMM.
With declared tasks it composes along the tasks' ``after`` chains as ESMM does (a decomposition such as
click -> add_to_cart -> buy is then declared as the chain itself).
"""

from __future__ import annotations

from models.base import EdgeTowersRanker
from models.config import ModelConfig


class ESM2(EdgeTowersRanker):
    config_class = ModelConfig
    reference = "Wen et al., Entire Space Multi-Task Modeling via Post-Click Behavior Decomposition (ESM2), SIGIR 2020"
    # tuned on the 1M-row synthetic log (docs/defaults.md)
    train_defaults = {"learning_rate": 0.004, "epochs": 1, "weighting": {"strategy": "gradnorm"}}
    has_unclick_edge = False
    default_supervised = ("ctr", "ctavr", "ctcvr")
