"""Synthesis: the three lenses side by side, read from the chapters' saved results.

:func:`lens_table` reads each lens's saved results (kernel alignment, V1T training, FactorTopy) and
puts every headline number next to its own control in one tidy table; a chapter that has not run
becomes one row that says which chapter to run. :func:`load_alignment_inputs` gathers the neural
kernels, the zoo's artificial kernels and the trained V1T's exported kernels so that
:func:`v1t_alignment` can put them through the kernel-alignment lens with the existing functions
(:func:`neuroalign_utils.zoo.alignment.combine_kernel_sets` and
:func:`~neuroalign_utils.zoo.alignment.alignment_summary`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import storage
from ._validation import check_int
from .zoo import alignment

logger = logging.getLogger(__name__)

#: The lens each upstream chapter's headline belongs to, in book order.
LENS_CHAPTERS = {
    "kernel_alignment": "Kernel alignment (Jalil et al.)",
    "v1t_training": "V1T (Li et al.)",
    "factortopy_encoding": "FactorTopy (Yang et al.)",
}

#: Controls that stand for chance (no structure), as opposed to competing models or ceilings.
CHANCE_CONTROLS = ("phase-randomised null", "no hierarchy", "random layer choice")

TABLE_COLUMNS = ["lens", "chapter", "measure", "result", "value", "control", "control_value", "difference",
                 "note"]


def run_hint(chapter: str) -> str:
    """The command that produces a chapter's results."""
    return f"`neuroalign run {chapter}`"


def _results_dir(chapter: str, data_dir) -> Path | None:
    try:
        folder = storage.latest_results_dir(chapter, data_dir=data_dir)
    except storage.NoRunError:  # never ran; an unfinished or damaged run is an error, not a gap
        return None
    return folder if (folder / "headline.json").exists() else None


def _row(measure, result, value, control, control_value, note=""):
    value = float(value) if value is not None else np.nan
    control_value = float(control_value) if control_value is not None else np.nan
    return dict(measure=measure, result=result, value=value, control=control, control_value=control_value,
                difference=value - control_value, note=note)


def kernel_alignment_rows(folder: Path) -> list[dict]:
    """Each zoo model's mean 1 − RMSE against its phase-randomised null (kernel-alignment chapter)."""
    headline = json.loads((folder / "headline.json").read_text())
    tests = pd.read_parquet(folder / "tests.parquet").set_index("model")
    weights = headline.get("artificial_weights", "random")
    rows = []
    for model, value in headline["mean_one_minus_rmse_by_model"].items():
        p = tests.loc[model, "p_real_vs_null"] if model in tests.index else np.nan
        # the V1T joins chapter 04 when it re-runs after the V1T chapters; its weights are trained
        origin = "trained on V1" if model.lower().startswith("v1t") else f"{weights} weights"
        rows.append(_row("mean 1 − RMSE", f"{model} ({origin})", value, "phase-randomised null",
                         headline["mean_null_by_model"][model], f"permutation p = {p:.3g}"))
    return rows


def v1t_rows(folder: Path) -> list[dict]:
    """V1T against the CNN and linear cores, and against the planted noise ceiling (V1T training chapter)."""
    results = pd.read_parquet(folder / "results.parquet")
    labels = {"v1t": "V1T", "cnn": "CNN", "linear": "linear"}
    mean = results.groupby(["core", "behaviour"])["single_trial_correlation"].mean()
    if ("v1t", True) not in mean.index:
        return []
    v1t = mean[("v1t", True)]
    rows = [_row("single-trial correlation", "V1T", v1t, f"{labels.get(core, core)} core", mean[(core, True)],
                 "same readout, with behaviour")
            for core in mean.index.get_level_values(0).unique() if core != "v1t" and (core, True) in mean.index]
    if ("v1t", False) in mean.index:
        rows.append(_row("single-trial correlation", "V1T", v1t, "V1T without behaviour", mean[("v1t", False)],
                         "behaviour planted as gain and RF shift"))
    if "fraction_of_single_trial_ceiling" in results:
        fraction = results.groupby(["core", "behaviour"])["fraction_of_single_trial_ceiling"].mean()
        for core in fraction.index.get_level_values(0).unique():
            if core != "v1t" and (core, True) in fraction.index:
                rows.append(_row("fraction of the planted noise ceiling", "V1T", fraction[("v1t", True)],
                                 f"{labels.get(core, core)} core", fraction[(core, True)], "1 = the planted ceiling"))
    return rows


def within_one_chance(planted_layers, n_layers: int) -> float:
    """Fraction of ROIs a uniformly random layer choice puts within one layer of the planted one."""
    planted = np.asarray(planted_layers, dtype=int)
    n_layers = check_int(n_layers, "n_layers", minimum=1)
    counts = np.minimum(planted + 1, n_layers - 1) - np.maximum(planted - 1, 0) + 1
    return float(np.mean(counts / n_layers))


def factortopy_rows(folder: Path) -> list[dict]:
    """R² against the planted ceiling, the hierarchy slope against none, layer recovery against chance."""
    headline = json.loads((folder / "headline.json").read_text())
    slope = headline["hierarchy_slope"]
    backbone = f"{headline['backbone']} ({headline.get('weights', 'random')} weights)"
    rows = [
        _row("mean test R²", backbone, headline["r2_mean"], "planted ceiling R²", headline.get("planted_ceiling_r2"),
             "ceiling: explainable variance of the synthetic subject"),
        _row("hierarchy slope β", backbone, slope["slope"], "no hierarchy", 0.0,
             f"95 % interval {slope['slope_low']:.2f} to {slope['slope_high']:.2f} (vertices)"),
    ]
    recovery_path = folder / "recovery.parquet"
    if recovery_path.exists() and np.isfinite(headline.get("layer_within_one_fraction", np.nan)):
        recovery = pd.read_parquet(recovery_path).drop(index="Unknown", errors="ignore")
        n_layers = int(headline["n_layers"])
        rows += [
            _row("planted layer recovered within one", backbone, headline["layer_within_one_fraction"],
                 "random layer choice", within_one_chance(recovery["planted_layer"], n_layers),
                 f"{len(recovery)} named ROIs, {n_layers} layers"),
            _row("planted layer recovered exactly", backbone, headline["layer_exact_fraction"],
                 "random layer choice", 1 / n_layers, f"{len(recovery)} named ROIs"),
        ]
    return rows


_ROW_BUILDERS = {"kernel_alignment": kernel_alignment_rows, "v1t_training": v1t_rows,
                 "factortopy_encoding": factortopy_rows}


def lens_table(*, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per headline result of each lens, next to its own control, read from saved results.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Data folder holding ``results/<chapter>/`` (see :func:`neuroalign_utils.storage.get_data_dir`).

    Returns
    -------
    pandas.DataFrame
        Columns ``lens``, ``chapter``, ``measure``, ``result``, ``value``, ``control``,
        ``control_value``, ``difference`` (value − control) and ``note``. A chapter without saved
        results (or with unreadable ones) gives one row whose ``note`` names the command to run.
    """
    rows = []
    for chapter, lens in LENS_CHAPTERS.items():
        folder = _results_dir(chapter, data_dir)
        found = []
        if folder is not None:
            try:
                found = _ROW_BUILDERS[chapter](folder)
            except (FileNotFoundError, KeyError) as err:
                logger.warning("Results of %s in %s are incomplete (%s)", chapter, folder, err)
        if not found:
            found = [dict(_row("—", "—", None, "—", None), note=f"no results: run {run_hint(chapter)}")]
        rows += [dict(lens=lens, chapter=chapter, **row) for row in found]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def missing_chapters(table: pd.DataFrame) -> list[str]:
    """Chapters whose results the lens table could not read."""
    return sorted(set(table.loc[table["value"].isna() & table["note"].str.startswith("no results"), "chapter"]))


def plot_lens_table(table: pd.DataFrame, *, axes=None):
    """Small multiples: per measure of each lens, the result (blue) beside its controls (grey).

    Points rather than bars, so that values far from zero (1 − RMSE near −0.41) still show their
    differences; each panel has its own scale.
    """
    import matplotlib.pyplot as plt

    shown = table.dropna(subset=["value"])
    groups = list(shown.groupby(["lens", "measure"], sort=False))
    if not groups:
        return None
    if axes is None:
        ncols = min(4, len(groups))
        nrows = int(np.ceil(len(groups) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    axes = np.ravel(axes)
    for ax, ((lens, measure), rows) in zip(axes, groups):
        labels = list(dict.fromkeys(rows["result"]))
        for row in rows.itertuples():
            x_result, x_control = labels.index(row.result), len(labels)
            labels.append(row.control)
            ax.plot([x_result, x_control], [row.value, row.control_value], color="0.8", lw=0.8, zorder=1)
            ax.scatter(x_control, row.control_value, color="0.5", zorder=2)
            ax.scatter(x_result, row.value, color="C0", zorder=3)
        ax.set_xticks(range(len(labels)), [label.replace(" (", "\n(") for label in labels], fontsize=7,
                      rotation=30, ha="right")
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_title(f"{lens.split(' (')[0]}: {measure}", fontsize=8)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    return axes


def load_alignment_inputs(*, selected_only: bool = True, data_dir: str | os.PathLike | None = None) -> dict:
    """Neural kernels, zoo kernels and the trained V1T's kernels in one shared-format array.

    Parameters
    ----------
    selected_only : bool
        Keep only the neural-kernel chapter's balanced selection.
    data_dir : str or path-like, optional

    Returns
    -------
    dict
        ``neural`` and ``artificial`` (xarray.DataArray, the V1T sets combined into the latter at the
        neural kernel size), ``model_parameters`` (Series: parameters per model, V1T's summed over
        its exported layers), ``v1t_models`` (list of V1T model names, empty when none were found)
        and ``missing`` (chapters to run; when it names ``neural_kernels`` or ``artificial_kernels``
        the arrays are ``None``).
    """
    folders = {c: _results_dir(c, data_dir) for c in ("neural_kernels", "artificial_kernels", "v1t_analysis")}
    missing = [c for c, folder in folders.items() if folder is None]
    out = dict(neural=None, artificial=None, model_parameters=None, v1t_models=[], missing=missing)
    if folders["neural_kernels"] is None or folders["artificial_kernels"] is None:
        return out
    neural = xr.open_dataarray(folders["neural_kernels"] / "neural_kernels.nc", engine="h5netcdf").load()
    if selected_only and "selected" in neural.coords:
        neural = neural.where(neural["selected"] == 1, drop=True)
    artificial = xr.open_dataarray(folders["artificial_kernels"] / "kernels.nc", engine="h5netcdf").load()
    zoo_table = pd.read_parquet(folders["artificial_kernels"] / "zoo_table.parquet").set_index("model")
    parameters = zoo_table.loc[pd.unique(artificial["model"].values), "n_parameters"].astype(float)
    v1t_files = sorted(folders["v1t_analysis"].glob("kernels_*.nc")) if folders["v1t_analysis"] else []
    if folders["v1t_analysis"] is not None and not v1t_files:
        missing.append("v1t_analysis")
    size = (neural.sizes["y"], neural.sizes["x"])
    sets = [xr.open_dataarray(path, engine="h5netcdf").load() for path in v1t_files]
    weights = artificial.attrs.get("weights", "random")
    combined = alignment.combine_kernel_sets([artificial, *sets], size)
    combined.attrs["weights"] = weights
    v1t_parameters = {}
    for kernels in sets:
        for model in np.unique(kernels["model"].values):
            counts = np.unique(kernels["n_parameters"].values[kernels["model"].values == model])
            v1t_parameters[str(model)] = v1t_parameters.get(str(model), 0.0) + float(counts.sum())
    out.update(neural=neural, artificial=combined, v1t_models=sorted(v1t_parameters),
               model_parameters=pd.concat([parameters, pd.Series(v1t_parameters, dtype=float)]))
    return out


def v1t_alignment(neural: xr.DataArray, artificial: xr.DataArray, *, n_bootstrap: int = 200,
                  n_permutations: int = 1000, random_state: int = 0) -> dict:
    """Kernel alignment of every model (the trained V1T included) by kernel kind, with the null.

    A thin call of :func:`neuroalign_utils.zoo.alignment.alignment_summary` with the groupings the
    synthesis shows: per model and per (model, kind).

    Returns
    -------
    dict
        As :func:`~neuroalign_utils.zoo.alignment.alignment_summary`, plus ``ranking``: one row per
        model with its mean 1 − RMSE, null, margin, permutation p and rank by margin (1 = largest);
        ``kernel_counts``: per (model, kind) the kernels given and those compared (the similarity
        engine drops constant kernels, such as a uniform attention map).
    """
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    result = alignment.alignment_summary(
        neural, artificial, {"model": ["model"], "kind": ["model", "kind"]},
        n_bootstrap=n_bootstrap, n_permutations=n_permutations, random_state=random_state,
    )
    ranking = result["tables"]["model"][["model", "value", "ci_low", "ci_high", "null_value"]].merge(
        result["tests"][["model", "real_minus_null", "p_real_vs_null"]], on="model")
    ranking["rank_by_margin"] = ranking["real_minus_null"].rank(ascending=False, method="min").astype(int)
    result["ranking"] = ranking.sort_values("rank_by_margin").reset_index(drop=True)
    given = pd.DataFrame({"model": artificial["model"].values.astype(str),
                          "kind": artificial["kind"].values.astype(str)})
    counts = given.value_counts(["model", "kind"]).rename("given").reset_index()
    compared = result["tables"]["kind"][["model", "kind", "n_artificial"]].rename(columns={"n_artificial": "compared"})
    counts = counts.merge(compared, on=["model", "kind"], how="left").fillna({"compared": 0})
    result["kernel_counts"] = counts.astype({"compared": int}).sort_values(["model", "kind"]).reset_index(drop=True)
    return result


def plot_margins(ranking: pd.DataFrame, highlight=(), *, ax=None):
    """Each model's mean 1 − RMSE above its phase-randomised null, with bootstrap intervals.

    Models named in ``highlight`` (the trained V1T) are drawn in orange, the zoo models in blue.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    rows = ranking.sort_values("real_minus_null")
    margin = rows["value"] - rows["null_value"]
    colours = ["C1" if model in set(highlight) else "C0" for model in rows["model"]]
    ax.barh(range(len(rows)), margin, color=colours,
            xerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]], error_kw=dict(lw=0.8))
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), rows["model"])
    ax.set(xlabel="mean 1 − RMSE above the null", title="margin over phase-randomised null")
    return ax


def _number(table, chapter, measure, control=None, column="difference"):
    rows = table[(table["chapter"] == chapter) & (table["measure"] == measure)]
    if control is not None:
        rows = rows[rows["control"] == control]
    return float(rows[column].iloc[0]) if len(rows) and np.isfinite(rows[column].iloc[0]) else None


def headline_numbers(table: pd.DataFrame, ranking: pd.DataFrame | None = None, v1t_models=(),
                     kernel_counts: pd.DataFrame | None = None) -> dict:
    """Short display strings of the synthesis's headline figures, for the text.

    A figure whose chapter has not run reads ``"not available (run `neuroalign run <chapter>`)"``.
    Keys: ``ka_best``, ``v1t_vs_cnn``, ``v1t_vs_linear``, ``v1t_fraction``, ``ft_r2``, ``ft_slope``,
    ``ft_within_one``, ``chance_cleared`` (results above a chance-level control, of those with one),
    ``v1t_kernel_margin``, ``v1t_kernel_rank``, ``v1t_kernels_compared``.
    """
    def missing(chapter):
        return f"not available (run {run_hint(chapter)})"

    out = {}
    ka = table[(table["chapter"] == "kernel_alignment") & table["value"].notna()]
    if len(ka):
        best = ka.loc[ka["difference"].idxmax()]
        out["ka_best"] = f"{best['result']}, {best['difference']:+.4f} over the null ({best['note']})"
    else:
        out["ka_best"] = missing("kernel_alignment")
    figures = {
        "v1t_vs_cnn": ("v1t_training", "single-trial correlation", "CNN core", "difference", "{:+.4f}"),
        "v1t_vs_linear": ("v1t_training", "single-trial correlation", "linear core", "difference", "{:+.3f}"),
        "v1t_fraction": ("v1t_training", "fraction of the planted noise ceiling", None, "value", "{:.0%}"),
        "ft_r2": ("factortopy_encoding", "mean test R²", None, "value", "{:.3f}"),
        "ft_slope": ("factortopy_encoding", "hierarchy slope β", None, "value", "{:.2f}"),
        "ft_within_one": ("factortopy_encoding", "planted layer recovered within one", None, "difference",
                          "{:+.0%}"),
    }
    for key, (chapter, measure, control, column, fmt) in figures.items():
        value = _number(table, chapter, measure, control, column)
        out[key] = fmt.format(value) if value is not None else missing(chapter)
    chance = table[table["control"].isin(CHANCE_CONTROLS) & table["value"].notna()]
    out["chance_cleared"] = f"{int((chance['difference'] > 0).sum())} of {len(chance)}"
    v1t_rows_ = ranking[ranking["model"].isin(list(v1t_models))] if ranking is not None else ranking
    if v1t_rows_ is None or not len(v1t_rows_):
        out["v1t_kernel_margin"] = out["v1t_kernel_rank"] = out["v1t_kernels_compared"] = missing("v1t_analysis")
    else:
        row = v1t_rows_.iloc[0]
        out["v1t_kernel_margin"] = f"{row['real_minus_null']:+.4f} (permutation p = {row['p_real_vs_null']:.3g})"
        out["v1t_kernel_rank"] = f"{int(row['rank_by_margin'])} of {len(ranking)}"
        rows = kernel_counts[kernel_counts["model"].isin(list(v1t_models))] if kernel_counts is not None else []
        out["v1t_kernels_compared"] = ", ".join(
            f"{r.compared} of {r.given} {r.kind.replace('_', ' ')} kernels" for r in rows.itertuples()) or "not counted"
    return out
