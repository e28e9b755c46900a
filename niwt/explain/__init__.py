"""Explanations built on :mod:`niwt.importance` (the one place gradients of logits are taken).

* :mod:`~niwt.explain.gradcam`: Grad-CAM maps of any classifier;
* :mod:`~niwt.explain.inverse`: the importance -> knowledge map;
* :mod:`~niwt.explain.text`: textual explanations of images and classes, and name vocabularies;
* :mod:`~niwt.explain.names`: neuron names;
* :mod:`~niwt.explain.fidelity`: how faithful all of these are on a world with masks and attributes.
"""

from niwt.explain.fidelity import (
    Dissection,
    FidelityReport,
    Localisation,
    TextPrecision,
    attribute_indicator,
    attribute_names,
    dissect,
    fidelity,
    localisation_scores,
)
from niwt.explain.gradcam import cam_from_activations, grad_cam, layer_importance, predicted_classes, scale_maps
from niwt.explain.inverse import INVERSE_LOSSES, InverseConfig, InverseMapper
from niwt.explain.names import NeuronName, format_neuron_names, name_neurons
from niwt.explain.text import (
    ClassExplanation,
    DimensionNames,
    EmbeddedVocabulary,
    ImageExplanation,
    Term,
    Vocabulary,
    as_vocabulary,
    explain_classes,
    explain_images,
    explain_importances,
    top_terms,
)

__all__ = [
    "grad_cam", "cam_from_activations", "scale_maps", "layer_importance", "predicted_classes",
    "INVERSE_LOSSES", "InverseConfig", "InverseMapper",
    "Vocabulary", "DimensionNames", "EmbeddedVocabulary", "as_vocabulary", "Term", "ImageExplanation",
    "ClassExplanation", "top_terms", "explain_importances", "explain_images", "explain_classes",
    "NeuronName", "name_neurons", "format_neuron_names",
    "Localisation", "TextPrecision", "Dissection", "FidelityReport", "fidelity", "attribute_names",
    "attribute_indicator", "localisation_scores", "dissect",
]
