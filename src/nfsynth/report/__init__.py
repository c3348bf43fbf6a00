"""nfsynth.report"""
