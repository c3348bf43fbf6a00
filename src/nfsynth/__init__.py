"""nfsynth: learn generative models of network flows, sample synthetic flows, measure them."""

__version__ = "0.1.0"
