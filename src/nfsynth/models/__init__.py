"""nfsynth.models"""
