"""Evaluation: BEIR benchmarks, question sets, calibration of the answer confidence.

May import: every `indexer` layer. Never `service`.
"""
