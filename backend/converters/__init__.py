"""Pure converters between Label Studio units and ours.

Label Studio units (percent coordinates 0-100, 1-based ``ls_frame`` numbers, LS brush RLE) exist
only inside this package; everything outside it works in pixels, 0-based ``frame_idx`` and
``bool[H, W]`` / ``bool[T, H, W]`` masks. The modules import no torch and no model code, so they
can be unit-tested alone (``tests/unit/test_converters.py``):

- ``annotation``: the one parser of Label Studio regions (interactive contexts and saved annotations).
- ``prompts``: an interactive context -> typed prompts (clicks, drawn regions, query, descriptions).
- ``results``: typed tracks -> Label Studio regions; ``region_ids``: our region ids and their frame suffixes.
- ``geometry``: percent <-> pixels, ``ls_frame`` <-> ``frame_idx``, seconds -> frame, mask -> box;
  ``timeline``: LS's video framerate vs the decoded frames; ``frame_files``: 1-based frame-list file names.
- ``rle``: Label Studio brush RLE encode/decode (byte-identical to ``label_studio_sdk``).
- ``coco_rle``: COCO RLE (pycocotools) for exports and training data.

Import the submodule you need; nothing is re-exported here.
"""
