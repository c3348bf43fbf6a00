"""nfsynth.io"""
