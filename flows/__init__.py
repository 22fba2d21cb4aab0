"""The streaming side of riskctl: events, features, scoring, stores and the Bytewax dataflow.

This package never imports ``training`` or ``cli``: everything the stream needs at run time
lives here, so a worker image only needs ``flows``.
"""
