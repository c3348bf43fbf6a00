"""nfsynth.embed"""
