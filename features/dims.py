"""Input dimensions of the transformed features: what a model needs to size its embedding tables.

:class:`InputDims` is plain data (JSON-serialisable through :meth:`InputDims.to_dict`) so that models can
store it in ``get_config`` and be rebuilt from config alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from features.spec import FeatureSpec


@dataclasses.dataclass(frozen=True)
class SparseInput:
    """A transformed feature looked up in an embedding table.

    ``cardinality`` rows; ``multivalent`` inputs are ``[batch, L]`` id lists padded with -1. An input that
    ``shares`` another's table (a behaviour sequence and its candidate item) has no table of its own and is
    pooled against that input's embedding (``pooling``: ``attention`` or ``mean``).
    """

    name: str
    cardinality: int
    embedding_dim: Optional[int] = None
    multivalent: bool = False
    pooling: str = "mean"
    shares: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class InputDims:
    """Every transformed model input, grouped by kind, plus the scenario and prior groups."""

    sparse: Tuple[SparseInput, ...]
    dense: Tuple[str, ...]
    scenario: str
    num_scenarios: int
    priors: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
    prior_only: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {
            "sparse": [dataclasses.asdict(s) for s in self.sparse],
            "dense": list(self.dense),
            "scenario": self.scenario,
            "num_scenarios": self.num_scenarios,
            "priors": {k: list(v) for k, v in self.priors.items()},
            "prior_only": list(self.prior_only),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "InputDims":
        return cls(sparse=tuple(SparseInput(**s) for s in d["sparse"]), dense=tuple(d["dense"]),
                   scenario=d["scenario"], num_scenarios=int(d["num_scenarios"]),
                   priors={k: tuple(v) for k, v in d.get("priors", {}).items()},
                   prior_only=tuple(d.get("prior_only", ())))

    @property
    def feature_names(self) -> Tuple[str, ...]:
        return tuple(s.name for s in self.sparse) + tuple(self.dense)


def input_dims(spec: FeatureSpec, vocabulary_size) -> InputDims:
    """Build :class:`InputDims` for ``spec``.

    Args:
      spec: the feature spec.
      vocabulary_size: callable ``name -> int`` giving the size of a TFT vocabulary (e.g.
        ``tft.TFTransformOutput.vocabulary_size_by_name``).
    """
    sparse, dense = [], []
    for f in spec.features:
        if f.is_scenario:
            # Known scenarios plus the unknown-scenario slot.
            sparse.append(SparseInput(f.name, len(f.values) + 1, f.embedding_dim))
        elif f.is_numeric:
            dense.append(f.name)
            if f.buckets:
                sparse.append(SparseInput(f.name + "__bucket", f.buckets + 1, f.embedding_dim))
        elif f.is_sequence:
            item = spec.feature(f.item)
            sparse.append(SparseInput(f.name, _cardinality(item, vocabulary_size), item.embedding_dim, True,
                                      f.pooling, shares=item.name))
        else:
            sparse.append(SparseInput(f.name, _cardinality(f, vocabulary_size), f.embedding_dim, f.is_multivalent,
                                      f.pooling))
    prior_only = tuple(f.name for f in spec.features if f.role == "prior")
    return InputDims(tuple(sparse), tuple(dense), spec.scenario.name, spec.num_scenarios, dict(spec.priors),
                     prior_only)


def _cardinality(f, vocabulary_size) -> int:
    """Rows of a categorical feature's table: its hash buckets, or its vocabulary plus the OOV buckets."""
    card = f.hash_buckets if f.encoding == "hash" else int(vocabulary_size(f.name)) + f.num_oov_buckets
    return max(card, 1)
