"""Image restoration with optimal-transport patch priors.

Operators (with adjoints) and patches are pure functions on (B, C, H, W) tensors; the
priors are ``torch.nn.Module`` objects whose gradient w.r.t. the image comes from the
envelope theorem; :func:`super_resolve` runs the paper's problem (9) with Adam.
"""
from .io import read_image, to_numpy_image, to_tensor_image, write_image
from .metrics import evaluate, lpips_distance, psnr, ssim
from .operators import (
    bicubic_upsample,
    bilinear_upsample,
    blur,
    blur_adjoint,
    gaussian_kernel,
    pyramid,
    pyramid_down,
    pyramid_down_adjoint,
    simulate_lr,
    sr_adjoint,
    sr_forward,
    subsample,
    subsample_adjoint,
)
from .patches import crop_image, extract_patches, pad_image, patches_adjoint, random_patches
from .priors import EntropicPatchPrior, PatchPrior, WassersteinPatchPrior, make_prior
from .superres import SRHistory, effective_lam, infer_hr_shape, super_resolve, upsample_init
from .wpp import SemiDualW2, emd_w2

__all__ = [
    "read_image", "write_image", "to_numpy_image", "to_tensor_image",
    "psnr", "ssim", "lpips_distance", "evaluate",
    "gaussian_kernel", "blur", "blur_adjoint", "subsample", "subsample_adjoint",
    "sr_forward", "sr_adjoint", "simulate_lr", "pyramid_down", "pyramid_down_adjoint",
    "pyramid", "bicubic_upsample", "bilinear_upsample",
    "extract_patches", "patches_adjoint", "random_patches", "pad_image", "crop_image",
    "PatchPrior", "EntropicPatchPrior", "WassersteinPatchPrior", "make_prior",
    "super_resolve", "SRHistory", "upsample_init", "infer_hr_shape", "effective_lam",
    "emd_w2", "SemiDualW2",
]
