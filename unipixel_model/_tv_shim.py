"""Make ``import torchvision`` work on CPU-only machines.

The only torchvision wheel that matches ``torch==2.13.0`` on the registry is a CUDA build.
Its ``_C`` extension cannot load without CUDA libraries, after which torchvision's meta
registrations crash on the missing ``torchvision::nms`` schema. Defining the two op schemas
before torchvision is imported lets the pure-Python parts (transforms, functional resize)
import; sam2 and transformers import torchvision at module level, so this must run first.
On a GPU install with a matching torchvision the ops exist and nothing is defined.
"""

import torch

_LIBRARY = None


def install() -> None:
    """Define ``torchvision::nms``/``qnms`` schemas if no torchvision extension provides them."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute access is the probe
        return
    except (AttributeError, RuntimeError):
        pass
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


install()
