"""The ``[data]`` tables of a run whose dataset is read from files: one frozen config class per format.

Each class's ``kind`` field default is its format's name, and :mod:`niwt.data.registry` lists the
classes with their loaders; ``niwt.config`` builds a run's ``[data]`` table from them. A setting
the loader also has takes the loader's own default. Values are checked when a config is made;
:meth:`FilesDataConfig.loader_options` are the keyword arguments of the format's loader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from niwt.checks import check_positive, check_value
from niwt.data.files.images import ImageTransform
from niwt.data.formats import loader_defaults
from niwt.data.formats.awa2 import load_awa2
from niwt.data.formats.cub import load_cub
from niwt.data.formats.folder import load_folder
from niwt.data.formats.splits import DEFAULT_VAL_FRACTION
from niwt.data.formats.xlsa17 import load_xlsa17
from niwt.data.withhold import check_withhold
from niwt.errors import ConfigError

__all__ = ["FilesDataConfig", "AwA2DataConfig", "CUBDataConfig", "Xlsa17DataConfig", "FolderDataConfig"]


def _default(loader: Callable[..., object], name: str) -> Any:
    """The default of parameter ``name`` of ``loader``: the loader's own default is the one source."""
    return loader_defaults(loader)[name]


@dataclass(frozen=True)
class FilesDataConfig:
    """Fields every dataset read from files has.

    Attributes:
        root: the dataset folder (`--set data.root=PATH` points a config at a copy).
        seed: seed of the drawn splits (validation classes, held-out seen images); unset: the run's seed.
        val_fraction: share of the seen classes drawn as validation classes when the files name none.
        resize: the shorter image side is resized to this many pixels.
        crop: side of the centre crop the network sees (the model's input size).
        normalize: normalise with the ImageNet mean and std (torchvision weights' convention).
        check_images: open every image once when loading (unreadable ones are reported).
        workers: DataLoader worker processes reading images (0: in the main process); unset:
            min(4, CPU count). Numbers do not depend on it.
        withhold: unseen classes the run leaves out altogether, with their images
            (:func:`~niwt.data.withhold.withhold_classes`): to be taught to the finished run later.
    """

    root: str = ""
    seed: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    resize: int = ImageTransform.resize
    crop: int = ImageTransform.crop
    normalize: bool = ImageTransform.normalize
    check_images: bool = True
    workers: int | None = None
    withhold: tuple[str, ...] = ()

    @property
    def image_size(self) -> int:
        return self.crop

    def __post_init__(self) -> None:
        section = "data"
        if not self.root:
            raise ConfigError(f"`data.root` must name the dataset folder (data.kind = {self.kind!r}), "
                              "e.g. --set data.root=PATH")
        own_kind = next(f.default for f in dataclasses.fields(self) if f.name == "kind")
        check_value(section, self, "kind", choices=(own_kind,))
        check_value(section, self, "val_fraction", low=0, low_open=True, high=1, high_open=True)
        check_positive(section, self, "resize", "crop")
        check_value(section, self, "seed", low=0)
        check_value(section, self, "workers", low=0)
        check_withhold(section, self)

    def transform(self) -> ImageTransform:
        return ImageTransform(resize=self.resize, crop=self.crop, normalize=self.normalize)

    def loader_options(self) -> dict[str, Any]:
        """Keyword arguments of the format's loader (empty strings mean unset)."""
        skip = {"kind", "root", "resize", "crop", "normalize", "workers", "withhold"}
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        options = {k: (None if v == "" else v) for k, v in options.items()}
        return {**options, "transform": self.transform()}


@dataclass(frozen=True)
class AwA2DataConfig(FilesDataConfig):
    """The AwA2 release folder (`JPEGImages/<class>/*.jpg`, `classes.txt`, `predicates.txt`, matrices).

    Attributes:
        kind: "awa2".
        split: "proposed" (Xian et al.) or "standard".
        split_dir: the dataset's xlsa17 folder (xlsa17/data/AWA2): with res101.mat and att_splits.mat,
            xlsa17's exact image split; otherwise its class lists (trainvalclasses.txt, testclasses.txt).
        knowledge: "continuous" or "binary" predicate matrix.
        test_seen_fraction: share of each seen class's images held out for the seen test (without
            xlsa17's image split).
    """

    kind: str = "awa2"
    split: str = _default(load_awa2, "split")
    split_dir: str = ""
    knowledge: str = _default(load_awa2, "knowledge")
    test_seen_fraction: float = _default(load_awa2, "test_seen_fraction")


@dataclass(frozen=True)
class CUBDataConfig(FilesDataConfig):
    """The `CUB_200_2011` folder (`images.txt`, `image_class_labels.txt`, attributes, `text_c10/`).

    Attributes:
        kind: "cub".
        split_dir: the dataset's xlsa17 folder (xlsa17/data/CUB): with res101.mat and a split file,
            xlsa17's exact image split; otherwise its class lists, if not in root.
        captions_dir: folder of the per-image captions (`text_c10/`), if not in root.
        test_seen_fraction: share of each seen class's images held out for the seen test (without
            xlsa17's image split).
    """

    kind: str = "cub"
    split_dir: str = ""
    captions_dir: str = ""
    test_seen_fraction: float = _default(load_cub, "test_seen_fraction")


@dataclass(frozen=True)
class Xlsa17DataConfig(FilesDataConfig):
    """The xlsa17 package (`res101.mat` with `att_splits.mat` or `sent_splits.mat`).

    Attributes:
        kind: "xlsa17".
        semantic: "att" or "sent" split file (unset: the one present).
        knowledge: "att" (normalised) or "original_att".
        features_file: the features file beside the split file.
        image_root: folder holding the dataset's images (needed to train a CNN on them).
    """

    kind: str = "xlsa17"
    semantic: str = ""
    knowledge: str = _default(load_xlsa17, "knowledge")
    features_file: str = _default(load_xlsa17, "features_file")
    image_root: str = ""


@dataclass(frozen=True)
class FolderDataConfig(FilesDataConfig):
    """Your own classes: one sub-folder of images per class and one CSV of splits and knowledge.

    Attributes:
        kind: "folder".
        csv_file: the class table (default: the only .csv in root).
        test_seen_fraction: share of each seen class's images held out for the seen test.
    """

    kind: str = "folder"
    csv_file: str = ""
    test_seen_fraction: float = _default(load_folder, "test_seen_fraction")
