"""Analyses of trained encoders: attention rollout, its centre of mass vs the pupil centre (correlated
across trials, and moved by the pupil alone on fixed images, next to the readout shifter's move), the
share of the pupil's effect that passes through the attention weights, artificial receptive fields
(aRFs) with 2-D Gaussian fits, and export of V1T kernels in the shared kernel format.

Attention rollout (Abnar & Zuidema 2020, as used by V1T): per block, the head-fused attention
``A`` (``fusion='max'`` as in the reference code, or ``'mean'``) plus the identity (the residual path),
row-normalised; the blocks' matrices are multiplied, ``R = Â_L ⋯ Â_1``; the map is the class-token row
of ``R`` over the patch tokens (the mean over all rows when there is no class token), normalised to
sum to one, on the true patch grid, then resized to the image.

Every analysis runs on the device of the model it is given (see
:func:`neuroalign_utils.v1t.pipeline.load_run`'s ``device``) and returns CPU arrays; white noise for
the aRFs is drawn on the CPU from its seed, so the same images are shown on every device.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from scipy import optimize, stats

from .._validation import check_float, check_in_allowed, check_int, check_shape2d
from ..devices import module_device
from .cores import Core, V1TCore
from .models import Encoder


def attention_rollout(attentions, *, fusion: str = "max", class_token: bool = True) -> torch.Tensor:
    """Rollout of per-block attention weights ``[(B, heads, L, L), …]`` → ``(B, L − class_token)``.

    Each returned row sums to one.
    """
    check_in_allowed(fusion, "fusion", ["max", "mean"])
    rollout = None
    for weights in attentions:
        fused = weights.amax(1) if fusion == "max" else weights.mean(1)
        fused = fused + torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        fused = fused / fused.sum(-1, keepdim=True)
        rollout = fused if rollout is None else fused @ rollout
    if class_token:
        row = rollout[:, 0, 1:]
    else:
        row = rollout.mean(1)
    return row / row.sum(-1, keepdim=True)


@torch.no_grad()
def rollout_maps(
    model: Encoder, images, behaviour=None, pupil_center=None, *, fusion: str = "max", batch_size: int = 64
) -> xr.DataArray:
    """Attention-rollout maps of an encoder whose core has attention (V1T), resized to the image:
    ``(trial, y, x)``, each sums to 1."""
    if not model.core.has_attention:
        raise ValueError(
            f"rollout_maps needs a core with attention (V1T); this model's core is {type(model.core).__name__}."
        )
    model.eval()
    device = module_device(model)
    images = torch.as_tensor(images, device=device)
    if behaviour is not None:
        behaviour, pupil_center = (
            torch.as_tensor(behaviour, device=device),
            torch.as_tensor(pupil_center, device=device),
        )
    h, w = images.shape[-2:]
    out = []
    for s in range(0, len(images), batch_size):
        sl = slice(s, s + batch_size)
        b = None if behaviour is None else model.core_inputs(behaviour[sl], pupil_center[sl])
        _, attention = model.core(images[sl], b, return_attention=True)
        grid_maps = attention_rollout(attention, fusion=fusion).reshape(-1, 1, *model.core.output_shape[1:])
        maps = F.interpolate(grid_maps, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        out.append(maps / maps.sum((-2, -1), keepdim=True))
    return xr.DataArray(
        torch.cat(out).cpu().numpy(), dims=("trial", "y", "x"), name="attention_rollout", attrs={"fusion": fusion}
    )


def centre_of_mass(maps: xr.DataArray) -> pd.DataFrame:
    """Centre of mass ``(x, y)`` in pixels of each map ``(trial, y, x)``."""
    values = np.asarray(maps)
    total = values.sum((1, 2))
    ys, xs = np.arange(values.shape[1]), np.arange(values.shape[2])
    return pd.DataFrame({"x": (values.sum(1) @ xs) / total, "y": (values.sum(2) @ ys) / total})


def pupil_correlation(com: pd.DataFrame, pupil_center: np.ndarray) -> pd.DataFrame:
    """Pearson r and p between the centre of mass and the pupil centre, for x and for y (Table 2)."""
    rows = []
    for i, axis in enumerate(("x", "y")):
        r, p = stats.pearsonr(com[axis], np.asarray(pupil_center)[:, i])
        rows.append({"axis": axis, "r": float(r), "p": float(p)})
    return pd.DataFrame(rows)


def centre_of_mass_shift_with_pupil(
    model: Encoder, images, behaviour, *, offset: float = 2.0, fusion: str = "max"
) -> pd.DataFrame:
    """How far the rollout's centre of mass moves when only the pupil centre moves.

    The same ``images`` and ``behaviour`` are passed with the pupil centre at ``+offset`` and at
    ``−offset`` standard deviations along x, then along y (the other coordinate at 0); image content
    cancels in the difference. Across trials (Table 2) it does not: when test images repeat and the
    pupil wanders slowly, images shown at different mean pupil positions correlate the two by chance,
    so the per-trial p-values are too small.

    Parameters
    ----------
    model : Encoder
        An encoder with a V1T core built with behaviour.
    images : array ``(n, 1, h, w)``
        Standardised images, as the model takes them.
    behaviour : array ``(n, 3)``
        Behaviour passed with every image (e.g. its training mean, repeated).
    offset : float, default=2.0
        Pupil centre on either side, in standard deviations (the loader z-scores the pupil centre).
    fusion : {'max', 'mean'}, default='max'
        Head fusion of the rollout (see :func:`attention_rollout`).

    Returns
    -------
    DataFrame
        One row per pupil axis: ``along`` and ``across``, the mean move (pixels) of the centre of mass
        along that axis and along the other one, from ``−offset`` to ``+offset``.
    """
    offset = check_float(offset, "offset", minimum=0.0)
    images, behaviour = torch.as_tensor(images), torch.as_tensor(behaviour)
    rows = []
    for i, axis in enumerate(("x", "y")):
        coms = []
        for sign in (1.0, -1.0):
            pupil = torch.zeros(len(images), 2)
            pupil[:, i] = sign * offset
            coms.append(centre_of_mass(rollout_maps(model, images, behaviour, pupil, fusion=fusion)))
        move = (coms[0] - coms[1]).mean()
        rows.append({"axis": axis, "along": float(move[axis]), "across": float(move["yx"[i]])})
    return pd.DataFrame(rows)


@torch.no_grad()
def shifter_shift_px(model: Encoder, mouse: str, pupil_center) -> np.ndarray:
    """How far the readout's shifter moves every read position, in pixels of the core's input: ``(n, 2)``.

    The shifter's output (``grid_sample`` units over the core's feature grid) scaled as
    :func:`grid_to_pixels` maps grid units to pixels; zeros for an encoder without a shifter.
    """
    pupil_center = torch.as_tensor(np.asarray(pupil_center, dtype=np.float32), device=module_device(model))
    if mouse not in model.shifters:
        return np.zeros((len(pupil_center), 2))
    shift = model.shifters[mouse](pupil_center).double().cpu().numpy()
    zero_x, zero_y = grid_to_pixels(model.core, 0.0, 0.0)
    x, y = grid_to_pixels(model.core, shift[:, 0], shift[:, 1])
    return np.stack([x - zero_x, y - zero_y], axis=1)


def pupil_sweep(
    model: Encoder, mouse: str, images, behaviour, *, offsets=(-2.0, -1.0, 0.0, 1.0, 2.0), fusion: str = "max"
) -> pd.DataFrame:
    """Rollout centre of mass and shifter move as the pupil centre alone sweeps along x, then y.

    The same ``images`` and ``behaviour`` are passed with the pupil centre at each of ``offsets``
    standard deviations along one axis (the other at 0), so image content is held fixed: what moves
    is what the pupil moves. The move between two offsets of the ``com_*`` columns is
    :func:`centre_of_mass_shift_with_pupil`'s.

    Parameters
    ----------
    model : Encoder
        An encoder with a V1T core built with behaviour.
    mouse : str
        Whose shifter to read (a key of ``model.readouts``).
    images : array ``(n, 1, h, w)``
    behaviour : array ``(n, 3)``
    offsets : sequence of float
        Pupil centre positions, in standard deviations.
    fusion : {'max', 'mean'}

    Returns
    -------
    DataFrame
        One row per (moved ``axis``, ``offset``): ``com_x``, ``com_y`` (mean centre of mass over the
        images, pixels) and ``shifter_x``, ``shifter_y`` (the shifter's move of the read positions,
        pixels).
    """
    if mouse not in model.readouts:
        raise ValueError(f"'mouse' must be one of {sorted(model.readouts)}; got {mouse!r}.")
    images, behaviour = torch.as_tensor(images), torch.as_tensor(behaviour)
    rows = []
    for i, axis in enumerate(("x", "y")):
        for offset in offsets:
            pupil = torch.zeros(len(images), 2)
            pupil[:, i] = float(offset)
            com = centre_of_mass(rollout_maps(model, images, behaviour, pupil, fusion=fusion)).mean()
            shift = shifter_shift_px(model, mouse, pupil[:1])[0]
            rows.append(
                {
                    "axis": axis,
                    "offset": float(offset),
                    "com_x": float(com["x"]),
                    "com_y": float(com["y"]),
                    "shifter_x": float(shift[0]),
                    "shifter_y": float(shift[1]),
                }
            )
    return pd.DataFrame(rows)


def sweep_moves(sweep: pd.DataFrame, *, low: float = -2.0, high: float = 2.0) -> pd.DataFrame:
    """Moves (pixels) from pupil offset ``low`` to ``high`` along each axis, from :func:`pupil_sweep`
    (a ``mouse`` column, if present, is kept): ``attention`` and ``shifter`` along the moved axis."""
    keys = ["mouse", "axis"] if "mouse" in sweep else ["axis"]
    rows = []
    for key, part in sweep.groupby(keys if len(keys) > 1 else keys[0], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        axis = key[-1]
        at = part.set_index("offset")
        rows.append(
            dict(
                zip(keys, key),
                attention=float(at.loc[high, f"com_{axis}"] - at.loc[low, f"com_{axis}"]),
                shifter=float(at.loc[high, f"shifter_{axis}"] - at.loc[low, f"shifter_{axis}"]),
            )
        )
    return pd.DataFrame(rows)


@torch.no_grad()
def pupil_effect_through_attention(
    model: Encoder, mouse: str, images, behaviour, *, offset: float = 2.0, batch_size: int = 64
) -> pd.DataFrame:
    """How much of the pupil centre's effect on the predicted responses passes through attention weights.

    The centre-of-mass check above asks whether attention *moves* with the pupil. This asks whether
    the encoder *uses* attention for the pupil at all: with images and behaviour fixed, the pupil
    centre goes from ``−offset`` to ``+offset`` standard deviations along one axis (the other at 0),
    and ``Δ = log r(+) − log r(−)`` per trial and neuron. The same is repeated with every block's
    attention weights taken from a pass at the centred pupil, while the values, MLPs, B-MLPs and
    the shifter still see the moved pupil: ``Δ_fixed``. The share that went through the weights is
    ``‖Δ − Δ_fixed‖² / ‖Δ‖²``: 0 when fixing the weights changes nothing, 1 when nothing of the
    effect is left without them.

    Parameters
    ----------
    model : Encoder
        An encoder with a V1T core built with behaviour.
    mouse : str
        Which readout (a key of ``model.readouts``).
    images : array ``(n, 1, h, w)``
        Standardised images, as the model takes them.
    behaviour : array ``(n, 3)``
        Behaviour passed with every image (e.g. its training mean, repeated).
    offset : float, default=2.0
        Pupil centre on either side, in standard deviations.
    batch_size : int, default=64

    Returns
    -------
    DataFrame
        One row per pupil axis: ``pupil_effect`` (root mean square of ``Δ``, natural-log units) and
        ``through_attention`` (the share above).
    """
    if not model.core.has_attention or not model.core.behaviour_dim:
        raise ValueError(
            "pupil_effect_through_attention needs an encoder whose core has attention (V1T) and "
            "was built with behaviour."
        )
    if mouse not in model.readouts:
        raise ValueError(f"'mouse' must be one of {sorted(model.readouts)}; got {mouse!r}.")
    offset = check_float(offset, "offset", minimum=0.0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    model.eval()
    device = module_device(model)
    images, behaviour = torch.as_tensor(images, device=device), torch.as_tensor(behaviour, device=device)
    changes = {(axis, route): [] for axis in (0, 1) for route in ("free", "fixed")}
    for s in range(0, len(images), batch_size):
        x, b = images[s : s + batch_size], behaviour[s : s + batch_size]
        centred = torch.zeros(len(x), 2, device=device)
        _, weights = model.core(x, model.core_inputs(b, centred), return_attention=True)  # once for both axes
        for axis in (0, 1):
            plus, minus = centred.clone(), centred.clone()
            plus[:, axis], minus[:, axis] = offset, -offset
            for route, w in (("free", None), ("fixed", weights)):
                log_plus, log_minus = (model(x, mouse, b, p, attention_weights=w).log() for p in (plus, minus))
                changes[axis, route].append(log_plus - log_minus)
    rows = []
    for axis, name in enumerate(("x", "y")):
        free, fixed = (torch.cat(changes[axis, route]).double() for route in ("free", "fixed"))
        total = float((free**2).sum())
        rows.append(
            {
                "axis": name,
                "pupil_effect": float(free.pow(2).mean().sqrt()),
                "through_attention": float(((free - fixed) ** 2).sum()) / total if total else 0.0,
            }
        )
    return pd.DataFrame(rows)


@torch.no_grad()
def artificial_receptive_fields(
    respond, image_size=(36, 64), *, n_images: int = 2000, batch_size: int = 250, seed: int = 0
) -> np.ndarray:
    """Response-weighted average of white-noise images: ``(n_units, h, w)``.

    ``respond`` maps a batch of images ``(B, 1, h, w)`` (standard normal pixels) to responses
    ``(B, n_units)`` (on any device). The aRF is ``Σᵢ (rᵢ − r̄)·xᵢ / n``; for a linear unit it is its
    filter (white noise has identity covariance). The noise is drawn on the CPU from ``seed``.
    """
    h, w = check_shape2d(image_size, "image_size")
    n_images = check_int(n_images, "n_images", minimum=2)
    generator = torch.Generator().manual_seed(seed)
    weighted, total, n_seen, responses_sum = None, None, 0, None
    for s in range(0, n_images, batch_size):
        noise = torch.randn(min(batch_size, n_images - s), 1, h, w, generator=generator)
        r = torch.as_tensor(respond(noise), dtype=torch.float64, device="cpu")
        x = noise[:, 0].reshape(len(noise), -1).double()
        part = r.T @ x
        weighted = part if weighted is None else weighted + part
        total = x.sum(0) if total is None else total + x.sum(0)
        responses_sum = r.sum(0) if responses_sum is None else responses_sum + r.sum(0)
        n_seen += len(noise)
    mean_r = responses_sum / n_seen
    arf = (weighted - mean_r[:, None] * total[None]) / n_seen
    return arf.reshape(-1, h, w).numpy()


def _gaussian(coords, amplitude, x0, y0, sigma_x, sigma_y, theta, offset):
    x, y = coords
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * (x - x0) + s * (y - y0), -s * (x - x0) + c * (y - y0)
    return offset + amplitude * np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))


def fit_gaussian_2d(maps: np.ndarray) -> pd.DataFrame:
    """Fit an oriented 2-D Gaussian to each map ``(n, h, w)`` (least squares).

    For aRFs, pass the absolute value (an oriented filter has lobes of both signs). Returns one row
    per map: ``amplitude, x0, y0, sigma_x, sigma_y, theta, offset, r2`` (``NaN`` where the fit
    failed); ``sigma_x ≥ sigma_y`` by convention.
    """
    maps = np.asarray(maps, dtype=float)
    h, w = maps.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    coords = np.stack([xx.ravel(), yy.ravel()])
    rows = []
    for m in maps:
        flat = m.ravel()
        weights = np.clip(flat - np.median(flat), 0, None)
        x0, y0 = (coords * weights).sum(1) / max(weights.sum(), 1e-12)
        p0 = [flat.max() - np.median(flat), x0, y0, 2.0, 2.0, 0.0, np.median(flat)]
        bounds = ([0, -0.5, -0.5, 0.3, 0.3, -np.pi, -np.inf], [np.inf, w - 0.5, h - 0.5, w, h, np.pi, np.inf])
        try:
            p, _ = optimize.curve_fit(_gaussian, coords, flat, p0=p0, bounds=bounds, maxfev=4000)
            residual = flat - _gaussian(coords, *p)
            r2 = 1 - residual.var() / max(flat.var(), 1e-12)
        except (RuntimeError, ValueError):
            p, r2 = [np.nan] * 7, np.nan
        amplitude, x0, y0, sx, sy, theta, offset = p
        if sx < sy:
            sx, sy, theta = sy, sx, theta + np.pi / 2
        rows.append(dict(amplitude=amplitude, x0=x0, y0=y0, sigma_x=sx, sigma_y=sy, theta=theta, offset=offset, r2=r2))
    return pd.DataFrame(rows)


def encoder_arfs(
    model: Encoder,
    mouse: str,
    behaviour,
    pupil_center=(0.0, 0.0),
    *,
    image_size=(36, 64),
    n_images: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """aRFs of every neuron of one mouse through the whole encoder, and their Gaussian fits.

    White noise is passed with the same ``behaviour`` (3 values, e.g. the training mean) and
    ``pupil_center`` (2 values, z-scored) on every image; the fit is :func:`fit_gaussian_2d` of the
    absolute aRF smoothed with a 1-pixel Gaussian (an oriented filter has lobes of both signs), with
    the image-axis SDs of :func:`axis_sigmas` added.

    Returns
    -------
    arfs : array ``(n_neurons, h, w)``
    fits : DataFrame, one row per neuron (``neuron`` column)
    """
    from scipy import ndimage

    device = module_device(model)
    behaviour = torch.as_tensor(np.asarray(behaviour, dtype=np.float32), device=device).reshape(1, -1)
    pupil = torch.as_tensor(np.asarray(pupil_center, dtype=np.float32), device=device).reshape(1, 2)
    model.eval()

    def respond(noise):
        return model(noise.to(device), mouse, behaviour.expand(len(noise), -1), pupil.expand(len(noise), 2))

    arfs = artificial_receptive_fields(respond, image_size, n_images=n_images, seed=seed)
    fits = fit_gaussian_2d(ndimage.gaussian_filter(np.abs(arfs), (0, 1, 1)))
    fits = pd.concat([fits, axis_sigmas(fits)], axis=1)
    fits["neuron"] = np.arange(len(fits))
    return arfs, fits


def arf_sweep(
    model: Encoder, mouse: str, behaviour, *, offsets=(-2.0, 0.0, 2.0), min_r2: float = 0.3, **arf_options
) -> pd.DataFrame:
    """Where the whole encoder's aRFs (core, B-MLPs and shifter together) lie as the pupil centre alone
    moves along x, then y.

    aRFs (:func:`encoder_arfs`) are measured with the pupil at each of ``offsets`` standard deviations
    along one axis (the other at 0; the centred pupil is measured once). The neurons whose fits reach
    ``min_r2`` at every pupil position are kept, and the mean of their fitted centres is reported, so
    that moves between offsets are differences of these means.

    Returns
    -------
    DataFrame
        One row per (``axis``, ``offset``): ``x0``, ``y0`` (mean fitted centre, pixels) and ``kept``.
    """
    min_r2 = check_float(min_r2, "min_r2")
    positions = {(axis, float(o)): np.eye(2)[i] * float(o) for i, axis in enumerate(("x", "y")) for o in offsets}
    fits, cache = {}, {}
    for key, pupil in positions.items():
        token = tuple(pupil)
        if token not in cache:
            cache[token] = encoder_arfs(model, mouse, behaviour, pupil, **arf_options)[1]
        fits[key] = cache[token]
    kept = np.logical_and.reduce([(f["r2"] >= min_r2).to_numpy() for f in cache.values()])
    rows = [
        {
            "axis": axis,
            "offset": offset,
            "x0": float(f["x0"].to_numpy()[kept].mean()) if kept.any() else float("nan"),
            "y0": float(f["y0"].to_numpy()[kept].mean()) if kept.any() else float("nan"),
            "kept": int(kept.sum()),
        }
        for (axis, offset), f in fits.items()
    ]
    return pd.DataFrame(rows)


def axis_sigmas(fits: pd.DataFrame) -> pd.DataFrame:
    """Horizontal and vertical SDs (pixels) of oriented Gaussian fits (:func:`fit_gaussian_2d`).

    The fit's ``sigma_x ≥ sigma_y`` are along its own axes, turned by ``theta``; the paper reports the
    spread along the image's axes, the square roots of the covariance's diagonal:
    ``σ_h² = σ_x² cos²θ + σ_y² sin²θ`` and ``σ_v² = σ_x² sin²θ + σ_y² cos²θ``.
    """
    c, s = np.cos(fits["theta"]), np.sin(fits["theta"])
    sx2, sy2 = fits["sigma_x"] ** 2, fits["sigma_y"] ** 2
    return pd.DataFrame(
        {"sigma_horizontal": np.sqrt(sx2 * c**2 + sy2 * s**2), "sigma_vertical": np.sqrt(sx2 * s**2 + sy2 * c**2)},
        index=fits.index,
    )


def chance_position_error(fit_x, fit_y, centre_x, centre_y) -> float:
    """Median distance (pixels) between each fitted centre and the planted centres of the *other* units.

    The chance level for :func:`fit_gaussian_2d` centres against planted RF centres: what the median
    error would be if fits were matched to the wrong units.
    """
    fx, fy = np.asarray(fit_x, float)[:, None], np.asarray(fit_y, float)[:, None]
    cx, cy = np.asarray(centre_x, float)[None], np.asarray(centre_y, float)[None]
    if fx.shape[0] != cx.shape[1] or fx.shape[0] < 2:
        raise ValueError(
            f"Need at least two units and one planted centre per fit; got {fx.shape[0]} fits and {cx.shape[1]} centres."
        )
    distance = np.hypot(fx - cx, fy - cy)
    others = ~np.eye(len(distance), dtype=bool)
    return float(np.nanmedian(distance[others]))


def _kernel_array(
    values: np.ndarray, *, model: str, layer: list, layer_index: list, layer_type: str, kind: str, n_parameters: list
) -> xr.DataArray:
    n = len(values)
    return xr.DataArray(
        values.astype(np.float32),
        dims=("kernel", "y", "x"),
        coords=dict(
            kernel=np.arange(n),
            model=("kernel", [model] * n),
            layer=("kernel", layer),
            layer_index=("kernel", np.asarray(layer_index, dtype=int)),
            layer_type=("kernel", [layer_type] * n),
            kind=("kernel", [kind] * n),
            n_parameters=("kernel", np.asarray(n_parameters, dtype=int)),
        ),
        name="kernels",
    )


def patch_embedding_kernels(core: V1TCore, *, model_name: str = "v1t") -> xr.DataArray:
    """The tokenizer's weights ``(emb_dim, p, p)`` in the shared kernel format (kind ``weight``)."""
    weight = core.tokenizer.weight.detach()[:, 0].cpu().numpy()
    n_params = sum(p.numel() for p in core.tokenizer.parameters())
    n = len(weight)
    return _kernel_array(
        weight,
        model=model_name,
        layer=["patch_embedding"] * n,
        layer_index=[0] * n,
        layer_type="convolution",
        kind="weight",
        n_parameters=[n_params] * n,
    )


@torch.no_grad()
def attention_map_kernels(
    model: Encoder, images, behaviour=None, pupil_center=None, *, model_name: str = "v1t"
) -> xr.DataArray:
    """Per-block, per-head class-token attention over the patch grid, averaged over ``images``.

    Shared kernel format, kind ``attention_map``, one kernel per (block, head), on the patch grid.
    """
    core = model.core
    if not core.has_attention:
        raise ValueError(
            f"attention_map_kernels needs a core with attention (V1T); this model's core is {type(core).__name__}."
        )
    model.eval()
    device = module_device(model)
    b = (
        None
        if behaviour is None
        else model.core_inputs(torch.as_tensor(behaviour, device=device), torch.as_tensor(pupil_center, device=device))
    )
    _, attention = core(torch.as_tensor(images, device=device), b, return_attention=True)
    values, layers, indices, n_params = [], [], [], []
    for i, (weights, layer) in enumerate(zip(attention, core.attention_modules())):
        maps = weights[:, :, 0, 1:].mean(0).reshape(-1, *core.output_shape[1:]).cpu().numpy()
        values.append(maps)
        layers += [f"block{i}.attention"] * len(maps)
        indices += [i + 1] * len(maps)
        n_params += [sum(p.numel() for p in layer.parameters())] * len(maps)
    return _kernel_array(
        np.concatenate(values),
        model=model_name,
        layer=layers,
        layer_index=indices,
        layer_type="attention",
        kind="attention_map",
        n_parameters=n_params,
    )


@torch.no_grad()
def bmlp_activations(model: Encoder, behaviour, pupil_center) -> xr.DataArray:
    """Output of every block's B-MLP for each trial: ``(block, trial, unit)`` (Fig A.3 analogue)."""
    core = model.core
    if not callable(getattr(core, "behaviour_embeddings", None)) or not core.behaviour_dim:
        raise ValueError(
            f"bmlp_activations needs a core with B-MLPs (V1T) built with behaviour; this model's core is "
            f"{type(core).__name__} with behaviour_dim={core.behaviour_dim}."
        )
    device = module_device(model)
    inputs = model.core_inputs(torch.as_tensor(behaviour, device=device), torch.as_tensor(pupil_center, device=device))
    values = core.behaviour_embeddings(inputs).cpu().numpy()
    return xr.DataArray(
        values, dims=("block", "trial", "unit"), coords={"block": np.arange(1, len(values) + 1)}, name="bmlp_activation"
    )


def performance_by_pupil(model: Encoder, mouse, *, n_groups: int = 3) -> pd.DataFrame:
    """Single-trial correlation on test trials split into pupil-dilation groups (Fig A.5 analogue).

    Groups are quantiles of the pupil dilation (``n_groups=3``: small, medium, large thirds).
    """
    from . import metrics, training

    n_groups = check_int(n_groups, "n_groups", minimum=2)
    trials = mouse.tier("test")
    dilation = mouse.behaviour[trials, 0]
    edges = np.quantile(dilation, np.linspace(0, 1, n_groups + 1))
    group = np.clip(np.searchsorted(edges, dilation, side="right") - 1, 0, n_groups - 1)
    predictions = training.predict(model, mouse, trials)
    rows = []
    for g in range(n_groups):
        sel = group == g
        corr = metrics.single_trial_correlation(mouse.responses[trials][sel], predictions[sel]).mean()
        rows.append(
            {
                "pupil_group": g + 1,
                "n_trials": int(sel.sum()),
                "mean_dilation": float(dilation[sel].mean()),
                "single_trial_correlation": float(corr),
            }
        )
    return pd.DataFrame(rows)


def grid_to_pixels(core: Core, grid_x, grid_y) -> tuple[np.ndarray, np.ndarray]:
    """Readout grid units (−1…1 over the core's feature grid, ``align_corners=True``) → input pixels ``(x, y)``.

    Pixel position of feature cell ``i`` is ``i · core.grid_stride + core.grid_offset``: for a V1T the
    centre of its patch, ``i · stride + (patch − 1) / 2``; for CNN and linear cores one pixel per cell,
    offset by what an unpadded input convolution loses a side. See :meth:`Core.grid_to_pixels`.
    """
    return core.grid_to_pixels(grid_x, grid_y)


@torch.no_grad()
def readout_positions(model: Encoder, mouse) -> pd.DataFrame:
    """Readout mean positions in pixels of the core's input next to cortical coordinates (Fig A.6)."""
    mu = model.readouts[mouse.name].positions().cpu().numpy()
    readout_x, readout_y = grid_to_pixels(model.core, mu[:, 0], mu[:, 1])
    return pd.DataFrame(
        {
            "cortical_x": mouse.coordinates[:, 0],
            "cortical_y": mouse.coordinates[:, 1],
            "readout_x": readout_x,
            "readout_y": readout_y,
        }
    )
