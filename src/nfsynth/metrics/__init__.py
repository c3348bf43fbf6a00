"""nfsynth.metrics"""
