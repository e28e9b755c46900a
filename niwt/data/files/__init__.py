"""File helpers shared by the dataset formats: text files, image files and folders of class images.

* :mod:`~niwt.data.files.text` — readers of the benchmarks' text files, with errors that name file and line;
* :mod:`~niwt.data.files.images` — the image transform, decoding and checking image files (no torch);
* :mod:`~niwt.data.files.image_dataset` — the torch ``Dataset`` reading image files lazily;
* :mod:`~niwt.data.files.folders` — the images of one folder per class, and the folders that are no class.
"""
