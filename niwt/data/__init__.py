"""Datasets: the ``ZSLData`` record and one loader per format."""

from niwt.data.record import ZSLData

__all__ = ["ZSLData"]
