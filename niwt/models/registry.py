"""The model registry: backbones built by name (:func:`create_model`), each builder taking the
number of seen classes, then only the settings it uses as named parameters; :func:`create_model`
refuses any other setting and :func:`model_settings` lists the accepted ones. Names are
registered once (a second registration raises); families (``timm/<name>``) build any name of theirs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from numbers import Integral

from niwt.errors import ConfigError
from niwt.models.backbones import Backbone, FeatureMLP, ResNetLike, VGGLike
from niwt.models.torchvision_nets import (
    RESNET_ARCHS,
    VGG_ARCHS,
    TorchvisionResNet,
    TorchvisionResNet101,
    TorchvisionVGG,
    TorchvisionVGG16,
    family_builder,
)

__all__ = ["register_model", "register_family", "create_model", "list_models", "list_families", "is_model_name",
           "model_settings", "model_defaults"]


_REGISTRY: dict[str, Callable[..., Backbone]] = {}

_SETTING_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _builder_settings(name: str, builder: Callable[..., Backbone]) -> tuple[str, ...]:
    """The named settings of ``builder`` after its first parameter (the number of classes)."""
    try:
        params = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the builder of model {name!r} has no inspectable signature: {exc}") from None
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                            inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise ConfigError(f"the builder of model {name!r} must take the number of classes as its first "
                          "positional parameter")
    catch_all = [p.name for p in params if p.kind in (inspect.Parameter.VAR_KEYWORD,
                                                      inspect.Parameter.VAR_POSITIONAL)]
    if catch_all:
        raise ConfigError(f"the builder of model {name!r} must name every setting it uses; it takes "
                          f"catch-all parameter(s) {catch_all}, which would swallow settings it cannot use")
    return tuple(p.name for p in params[1:] if p.kind in _SETTING_KINDS)


def register_model(name: str, builder: Callable[..., Backbone]) -> None:
    """Register ``builder`` under ``name``; a name can be registered once.

    Args:
        name: the model's name for :func:`create_model`.
        builder: ``builder(num_classes, **settings) -> Backbone`` (a class or a function) naming every
            setting it uses as a parameter, with no ``*args`` / ``**kwargs``.

    Raises:
        ConfigError: if ``name`` is taken, or ``builder``'s signature does not follow the rule above.
    """
    if name in _REGISTRY:
        raise ConfigError(f"a model named {name!r} is already registered")
    _builder_settings(name, builder)
    _REGISTRY[name] = builder


_FAMILIES: dict[str, Callable[[str], Callable[..., Backbone]]] = {}


def register_family(prefix: str, factory: Callable[[str], Callable[..., Backbone]]) -> None:
    """Let :func:`create_model` build every name ``prefix + <name>`` with ``factory(<name>)``'s
    builder (e.g. ``"timm/"``: any timm classifier by its name).

    Raises:
        ConfigError: if ``prefix`` is taken.
    """
    if prefix in _FAMILIES:
        raise ConfigError(f"a model family with prefix {prefix!r} is already registered")
    _FAMILIES[prefix] = factory


def list_models() -> list[str]:
    """The registered names :func:`create_model` accepts (families: :func:`list_families`)."""
    return sorted(_REGISTRY)


def list_families() -> list[str]:
    """The prefixes of model families: ``"<prefix><name>"`` builds that family's ``<name>``."""
    return sorted(_FAMILIES)


def is_model_name(name: object) -> bool:
    """Whether :func:`create_model` knows ``name`` (registered, or of a registered family)."""
    return isinstance(name, str) and (name in _REGISTRY or any(
        name.startswith(prefix) and len(name) > len(prefix) for prefix in _FAMILIES))


def _builder(name: str) -> Callable[..., Backbone]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    for prefix, factory in _FAMILIES.items():
        if isinstance(name, str) and name.startswith(prefix) and len(name) > len(prefix):
            return factory(name[len(prefix):])
    families = "".join(f", {prefix}<name>" for prefix in list_families())
    raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}{families}")


def model_settings(name: str) -> tuple[str, ...]:
    """The settings (keyword arguments) :func:`create_model` accepts for model ``name``.

    Example:
        >>> model_settings("resnet")
        ('width',)

    Raises:
        ConfigError: for an unknown model name.
    """
    return _builder_settings(name, _builder(name))


def model_defaults(name: str) -> dict[str, object]:
    """The settings model ``name`` accepts that have a default, with it.

    Raises:
        ConfigError: for an unknown model name.
    """
    params = inspect.signature(_builder(name)).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def create_model(name: str, num_classes: int, **kwargs: object) -> Backbone:
    """Build the backbone ``name`` with ``num_classes`` seen rows (random weights, no download).

    Args:
        name: one of :func:`list_models`.
        num_classes: number of seen classes, >= 1.
        **kwargs: settings of that model; see :func:`model_settings`.

    Raises:
        ConfigError: for an unknown model, a ``num_classes`` below 1, or a setting the model cannot use
            (the message lists the settings it accepts).
    """
    builder = _builder(name)
    accepted = model_settings(name)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        listed = ", ".join(accepted) if accepted else "none"
        raise ConfigError(f"model {name!r} cannot use the setting(s) {', '.join(unknown)}; "
                          f"settings it accepts: {listed}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 1:
        raise ConfigError(f"`num_classes` must be an integer >= 1, got {num_classes!r}")
    return builder(num_classes, **kwargs)


register_model("vgg", VGGLike)
register_model("resnet", ResNetLike)
for _arch in VGG_ARCHS:
    register_model(_arch, family_builder(_arch, TorchvisionVGG))
for _arch in RESNET_ARCHS:
    register_model(_arch, family_builder(_arch, TorchvisionResNet))
register_model("tv_vgg16", TorchvisionVGG16)  # the names of earlier releases
register_model("tv_resnet101", TorchvisionResNet101)
register_model("mlp", FeatureMLP)
