"""Reusable layers shared by the model families.

- `padding`: the one TF-style SAME padding rule (amounts, and whether a layer's own
  symmetric padding suffices or it pads explicitly), used by every SAME conv and pool.
- `common`: `ConvNormAct`, the one conv + BN (+ ReLU) layer of every family (2-D or 3-D,
  any conv), `conv2d_bn_act` and 2-D SAME pooling (TVN), squeeze-excitation and context
  gating.
- `spacetime`: 3D, (2+1)D and iTGM convolutions and space-time pooling (EvaNet).
- `fusion`: sigmoid-weighted multi-stream connections (AssembleNet).

Import the module you need; this package re-exports nothing.
"""
