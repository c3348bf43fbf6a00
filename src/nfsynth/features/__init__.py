"""nfsynth.features"""
