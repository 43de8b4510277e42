"""Pure converters between Label Studio units and ours.

Label Studio units (percent coordinates 0-100, 1-based ``ls_frame`` numbers, LS brush RLE) exist
only inside this package; everything outside it works in pixels, 0-based ``frame_idx`` and
``bool[H, W]`` / ``bool[T, H, W]`` masks. The modules import no torch and no model code, so they
can be unit-tested alone (``tests/unit/test_converters.py``):

- ``geometry``: percent <-> pixels, ``ls_frame`` <-> ``frame_idx``, seconds -> frame, mask -> box.
- ``rle``: Label Studio brush RLE encode/decode (byte-identical to ``label_studio_sdk``).
- ``coco_rle``: COCO RLE (pycocotools) for exports and training data.

Import the submodule you need; nothing is re-exported here.
"""
