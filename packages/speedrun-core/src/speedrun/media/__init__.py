"""Images for mixins: tensors and arrays turned into ``(H, W, C)`` uint8 pixels by one rule
(layouts, dtypes, value ranges), PNG encoding and atomic writes, and the one ``Plots/`` naming
rule shared by ``print_image``, ``save_figure`` and ``save_image_grid``. NumPy and Pillow are
imported on first use.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
