"""Reusable layers shared by the model families.

- `common`: TF-style SAME padding, conv + BN + ReLU, SAME pooling, squeeze-excitation and
  context gating (used by TVN, available to every family).
- `spacetime`: 3D, (2+1)D and iTGM convolutions and space-time pooling (EvaNet).
- `fusion`: sigmoid-weighted multi-stream connections (AssembleNet).

Import the module you need; this package re-exports nothing.
"""
