r"""Shared feature embedding: one table per sparse feature, pooled multivalent lists, dense passthrough.

For a sample with sparse features :math:`x_f` (ids), multivalent id lists :math:`\{x_{f,1..L_f}\}` and dense
values :math:`z_d`:

.. math::

   e_f = E_f[x_f], \qquad
   e_f^{multi} = \frac{1}{L_f} \sum_{l=1}^{L_f} E_f[x_{f,l}] \;(\text{mean, or the plain sum}), \qquad
   \mathbf{x} = e_{f_1} \oplus \dots \oplus e_{f_n} \oplus z_1 \oplus \dots \oplus z_m

where :math:`E_f \in R^{|V_f| \times d_f}` is feature f's table and padding ids (-1) are masked out. A
behaviour sequence (the user's recent items) has no table of its own: its ids index the candidate item's
table :math:`E_{item}`, and it is pooled against the candidate's embedding :math:`E_{item}[x_{item}]` by
:class:`~models.blocks.target_attention.TargetAttentionPooling` (DIN target attention, or a masked mean).
The same tables embed the prior groups (user / item / scenario priors) for personalised gates, so a
prior shares its embedding with the backbone (docs/models.md; PEPNet, Chang et al., KDD 2023).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from features.dims import InputDims
from models.blocks.target_attention import TargetAttentionPooling


@keras.utils.register_keras_serializable(package="msmt")
class FeatureEmbedding(keras.layers.Layer):
    """Embeds every transformed input; ``call`` returns ``{feature: [batch, d]}``.

    Args:
      input_dims: ``InputDims.to_dict()`` of the transformed features.
      embedding_dim: default table width for features without their own ``embedding_dim``.
      l2: L2 regularisation on every table.
    """

    def __init__(self, input_dims: Dict, embedding_dim: int = 16, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.input_dims = input_dims
        self.embedding_dim = embedding_dim
        self.l2 = l2
        self._dims = InputDims.from_dict(input_dims)
        reg = keras.regularizers.l2(l2) if l2 else None
        self.tables = {}
        self.sequence_pools = {}
        for s in self._dims.sparse:
            if s.shares:
                self.sequence_pools[s.name] = TargetAttentionPooling(pooling=s.pooling,
                                                                     name=f"sequence_pool_{_safe(s.name)}")
                continue
            self.tables[s.name] = keras.layers.Embedding(
                s.cardinality, s.embedding_dim or embedding_dim, embeddings_regularizer=reg,
                name=f"embedding_{_safe(s.name)}")

    def call(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out = {}
        for s in self._dims.sparse:
            if s.shares:
                continue  # after the item it is pooled against
            ids = tf.cast(inputs[s.name], tf.int64)
            table = self.tables[s.name]
            if s.multivalent:
                mask = tf.cast(ids >= 0, self.compute_dtype)[..., None]  # [B, L, 1]
                emb = table(tf.maximum(ids, 0)) * mask  # [B, L, d]
                total = tf.reduce_sum(emb, axis=1)
                if s.pooling == "mean":
                    total = total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
                out[s.name] = total
            else:
                if ids.shape.rank == 2:
                    ids = ids[:, 0]
                out[s.name] = table(ids)
        for s in self._dims.sparse:
            if s.shares:
                ids = tf.cast(inputs[s.name], tf.int64)  # [B, L], padded with -1
                items = self.tables[s.shares](tf.maximum(ids, 0))
                out[s.name] = self.sequence_pools[s.name](items, ids >= 0, out[s.shares])
        for name in self._dims.dense:
            x = tf.cast(inputs[name], self.compute_dtype)
            out[name] = tf.reshape(x, [-1, 1])
        return out

    def width(self, name: str) -> int:
        """Width of ``name``'s embedding: its table's (a sequence: its item's table's), 1 for a dense input."""
        shares = {s.name: s.shares for s in self._dims.sparse if s.shares}
        table = self.tables.get(shares.get(name, name))
        return table.output_dim if table is not None else 1

    @property
    def dims(self) -> InputDims:
        """The transformed inputs this embedding reads (tables, dense columns, scenario, prior groups)."""
        return self._dims

    def concat(self, embedded: Dict[str, tf.Tensor], names: Optional[Sequence[str]] = None) -> tf.Tensor:
        """Concatenate the embeddings of ``names`` (default: the backbone inputs) into ``[batch, sum d]``."""
        names = self.backbone_names if names is None else names
        return tf.concat([embedded[n] for n in names], axis=-1)

    def prior_names(self, group: str) -> Sequence[str]:
        """Transformed inputs of a prior group (``user``, ``item`` or ``scenario``)."""
        names = []
        for n in self._dims.priors.get(group, ()):
            names.append(n)
            if n + "__bucket" in self.tables:
                names.append(n + "__bucket")
        return names

    def prior_vector(self, embedded: Dict[str, tf.Tensor], groups: Sequence[str]) -> tf.Tensor:
        """:math:`E_{prior}`: the concatenated embeddings of the prior ``groups``, or a zero column ``[B, 1]``
        when the spec declares none of them (a gate then reads only its backbone input)."""
        names = [n for g in groups for n in self.prior_names(g)]
        if not names:
            return tf.zeros_like(next(iter(embedded.values()))[:, :1])
        return self.concat(embedded, names)

    @property
    def backbone_names(self) -> Sequence[str]:
        """Inputs of the backbone x: every feature except those used only as priors."""
        prior_only = set(self._dims.prior_only) | {n + "__bucket" for n in self._dims.prior_only}
        return [n for n in self._dims.feature_names if n not in prior_only]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(input_dims=self.input_dims, embedding_dim=self.embedding_dim, l2=self.l2)
        return cfg


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
