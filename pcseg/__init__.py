"""pcseg: 3D point-cloud semantic segmentation from very few labels."""

__version__ = "0.1.0"
