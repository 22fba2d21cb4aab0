"""The ``riskctl`` command line."""
