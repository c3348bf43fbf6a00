"""nfsynth.simulate"""
