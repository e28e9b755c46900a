"""Explanations built on :mod:`niwt.importance`: Grad-CAM maps (more modules follow)."""

from niwt.explain.gradcam import cam_from_activations, grad_cam, layer_importance, predicted_classes, scale_maps

__all__ = ["grad_cam", "cam_from_activations", "scale_maps", "layer_importance", "predicted_classes"]
