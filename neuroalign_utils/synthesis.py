"""Synthesis: the three lenses side by side, read from the chapters' saved results.

:func:`lens_table` reads each lens's saved results (kernel alignment, V1T training, FactorTopy) through
the lens's ``results`` module (the typed headlines of :data:`HEADLINES` and the file names beside them) and
puts every headline number next to its own control in one tidy table; a chapter that has not run
becomes one row that says which chapter to run. :func:`load_alignment_inputs` gathers the neural
kernels, the zoo's artificial kernels and the trained V1T's exported kernels so that
:func:`v1t_alignment` can put them through the kernel-alignment lens with the existing functions
(:func:`neuroalign_utils.kernels.pipeline.combine_kernel_sets` and
:func:`~neuroalign_utils.kernels.pipeline.alignment_summary`).
"""

from __future__ import annotations

import logging
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import paper_values, report, storage, style
from ._validation import check_int
from .factortopy import analysis
from .factortopy import results as factortopy_results
from .kernels import analysis as kernel_analysis
from .kernels import pipeline as kernel_pipeline
from .kernels import results as kernel_results
from .results import HEADLINE_FILE, Headline, ResultsError, TrainedVsRandom
from .v1t import results as v1t_results

logger = logging.getLogger(__name__)

#: The lens each upstream chapter's headline belongs to, in book order.
LENS_CHAPTERS = {
    "kernel_alignment": "Kernel alignment (Jalil et al.)",
    "v1t_training": "V1T (Li et al.)",
    "factortopy_encoding": "FactorTopy (Yang et al.)",
}

#: Controls that stand for chance (no structure), as opposed to competing models or ceilings.
CHANCE_CONTROLS = ("phase-randomised null", "no hierarchy", "random layer choice")

TABLE_COLUMNS = [
    "lens",
    "chapter",
    "measure",
    "result",
    "value",
    "control",
    "control_value",
    "difference",
    "p_value",
    "note",
]


#: Each chapter's headline schema, by chapter name (the synthesis's own is :class:`SynthesisHeadline`).
HEADLINES: dict[str, type[Headline]] = {
    cls.CHAPTER: cls
    for cls in (
        kernel_results.AllenHeadline,
        kernel_results.NeuralKernelsHeadline,
        kernel_results.ArtificialKernelsHeadline,
        kernel_results.KernelAlignmentHeadline,
        v1t_results.V1TTrainingHeadline,
        v1t_results.V1TAnalysisHeadline,
        factortopy_results.FactorTopyHeadline,
    )
}


@dataclass
class SynthesisHeadline(Headline):
    """The synthesis chapter's headline: chapters that were missing, the V1T models compared and the
    display strings of :func:`headline_numbers`."""

    CHAPTER = "synthesis"

    missing_chapters: list[str]
    v1t_models: list[str]
    numbers: dict[str, str]
    alignment_margin_by_model: dict[str, float] | None


def run_hint(chapter: str) -> str:
    """The command that produces a chapter's results."""
    return f"`neuroalign run {chapter}`"


def _results_dir(chapter: str, data_dir) -> Path | None:
    try:
        folder = storage.latest_results_dir(chapter, data_dir=data_dir)
    except storage.NoRunError:  # never ran; an unfinished or damaged run is an error, not a gap
        return None
    return folder if (folder / HEADLINE_FILE).exists() else None


def load_headline(chapter: str, folder: Path) -> Headline:
    """``chapter``'s headline from its run ``folder``, checked against :data:`HEADLINES`; a headline that does
    not match its schema is an error naming the field and the command that writes it again."""
    try:
        return HEADLINES[chapter].load(folder)
    except ResultsError as err:
        raise ResultsError(f"{err} Run {run_hint(chapter)} again to write it with this version.") from None


def _row(measure, result, value, control, control_value, note="", p_value=np.nan):
    value = float(value) if value is not None else np.nan
    control_value = float(control_value) if control_value is not None else np.nan
    return dict(
        measure=measure,
        result=result,
        value=value,
        control=control,
        control_value=control_value,
        difference=value - control_value,
        p_value=float(p_value),
        note=note,
    )


def kernel_alignment_rows(folder: Path) -> list[dict]:
    """Each zoo model's mean 1 − RMSE against its phase-randomised null (kernel-alignment chapter)."""
    headline = load_headline("kernel_alignment", folder)
    tests = pd.read_parquet(folder / kernel_results.ALIGNMENT_TESTS_FILE).set_index("model")
    ranking = pd.DataFrame(
        {
            "model": list(headline.mean_one_minus_rmse_by_model),
            "value": list(headline.mean_one_minus_rmse_by_model.values()),
            "null_value": [headline.mean_null_by_model[m] for m in headline.mean_one_minus_rmse_by_model],
        }
    )
    ranking["p_real_vs_null"] = ranking["model"].map(tests["p_real_vs_null"]) if len(tests) else np.nan
    return alignment_rows(ranking, headline.artificial_weights)


def alignment_rows(ranking: pd.DataFrame, weights: str) -> list[dict]:
    """Lens-table rows from a per-model table of mean 1 − RMSE, null and permutation p.

    ``weights`` is that of the paper's zoo models; a packaged model's label already says whether it is the
    trained build or its random twin, and the V1T's kernels come from a core trained on V1."""
    from .kernels.artificial import WEIGHT_LABELS

    rows = []
    for row in ranking.itertuples():
        model = str(row.model)
        if model.endswith(tuple(f" ({label})" for label in WEIGHT_LABELS.values())):
            result = model
        else:
            result = f"{model} ({'trained on V1' if model.lower().startswith('v1t') else f'{weights} weights'})"
        rows.append(
            _row(
                "mean 1 − RMSE",
                result,
                row.value,
                "phase-randomised null",
                row.null_value,
                f"permutation {report.format_p(row.p_real_vs_null)}",
                row.p_real_vs_null,
            )
        )
    return rows


def v1t_rows(folder: Path) -> list[dict]:
    """V1T against the CNN and linear cores, and against the planted noise ceiling (V1T training chapter)."""
    results = pd.read_parquet(folder / v1t_results.RESULTS_FILE)
    labels = {"v1t": "V1T", "cnn": "CNN", "linear": "linear"}
    mean = results.groupby(["core", "behaviour"])["single_trial_correlation"].mean()
    if ("v1t", True) not in mean.index:
        return []
    v1t = mean[("v1t", True)]
    rows = [
        _row(
            "single-trial correlation",
            "V1T",
            v1t,
            f"{labels.get(core, core)} core",
            mean[(core, True)],
            "same readout, with behaviour",
        )
        for core in mean.index.get_level_values(0).unique()
        if core != "v1t" and (core, True) in mean.index
    ]
    if ("v1t", False) in mean.index:
        rows.append(
            _row(
                "single-trial correlation",
                "V1T",
                v1t,
                "V1T without behaviour",
                mean[("v1t", False)],
                "behaviour planted as gain and RF shift",
            )
        )
    if "fraction_of_single_trial_ceiling" in results:
        fraction = results.groupby(["core", "behaviour"])["fraction_of_single_trial_ceiling"].mean()
        for core in fraction.index.get_level_values(0).unique():
            if core != "v1t" and (core, True) in fraction.index:
                rows.append(
                    _row(
                        "fraction of the planted noise ceiling",
                        "V1T",
                        fraction[("v1t", True)],
                        f"{labels.get(core, core)} core",
                        fraction[(core, True)],
                        "1 = the planted ceiling",
                    )
                )
    return rows


def factortopy_rows(folder: Path) -> list[dict]:
    """R² against the planted ceiling, the hierarchy slope against none, layer recovery against chance."""
    headline = load_headline("factortopy_encoding", folder)
    slope = headline.hierarchy_slope
    backbone = f"{headline.backbone} ({headline.weights} weights)"
    rows = [
        _row(
            "mean test R²",
            backbone,
            headline.r2_mean,
            "planted ceiling R²",
            headline.planted_ceiling_r2,
            "ceiling: explainable variance of the synthetic subject",
        ),
    ]
    if slope:  # None for a subject without ROI labels
        rows.append(
            _row(
                "hierarchy slope β",
                backbone,
                slope["slope"],
                "no hierarchy",
                0.0,
                f"95 % interval {report.format_interval(slope['slope_low'], slope['slope_high'])} (vertices)",
            )
        )
    recovery_path = folder / factortopy_results.RECOVERY_FILE
    if recovery_path.exists() and np.isfinite(headline.layer_within_one_fraction):
        recovery = pd.read_parquet(recovery_path).drop(index="Unknown", errors="ignore")
        n_layers = headline.n_layers
        rows += [
            _row(
                "planted layer recovered within one",
                backbone,
                headline.layer_within_one_fraction,
                "random layer choice",
                analysis.within_one_chance(recovery["planted_layer"], n_layers),
                f"{len(recovery)} named ROIs, {n_layers} layers",
            ),
            _row(
                "planted layer recovered exactly",
                backbone,
                headline.layer_exact_fraction,
                "random layer choice",
                1 / n_layers,
                f"{len(recovery)} named ROIs",
            ),
        ]
    return rows


_ROW_BUILDERS = {
    "kernel_alignment": kernel_alignment_rows,
    "v1t_training": v1t_rows,
    "factortopy_encoding": factortopy_rows,
}


def lens_table(
    *, data_dir: str | os.PathLike | None = None, alignment_ranking: pd.DataFrame | None = None, weights: str = "random"
) -> pd.DataFrame:
    """One row per headline result of each lens, next to its own control, read from saved results.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Data folder holding ``results/<chapter>/`` (see :func:`neuroalign_utils.storage.get_data_dir`).
    alignment_ranking : DataFrame, optional
        :func:`v1t_alignment`'s ``ranking``: when given, the kernel-alignment rows are this comparison
        (the one the synthesis page shows) instead of the kernel-alignment chapter's saved one, so a
        model's margin has one value on the page.
    weights : str
        The zoo's weights, for the rows of ``alignment_ranking``.

    Returns
    -------
    pandas.DataFrame
        Columns ``lens``, ``chapter``, ``measure``, ``result``, ``value``, ``control``,
        ``control_value``, ``difference`` (value − control) and ``note``. A chapter without saved
        results (or with unreadable ones) gives one row whose ``note`` names the command to run.

    Raises
    ------
    ResultsError
        When a chapter's headline does not match its schema (the field and the command are named).
    """
    rows = []
    for chapter, lens in LENS_CHAPTERS.items():
        folder = _results_dir(chapter, data_dir)
        found = []
        if chapter == "kernel_alignment" and alignment_ranking is not None:
            found = alignment_rows(alignment_ranking, weights)
        elif folder is not None:
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

    Parameters
    ----------
    table : DataFrame
        :func:`lens_table`.
    axes : array of matplotlib Axes, optional
        One per (lens, measure) panel; made (wide rows for panels with many results) when ``None``.

    Returns
    -------
    matplotlib.figure.Figure or None
        ``None`` when no chapter has results to show.
    """
    import matplotlib.pyplot as plt

    shown = table.dropna(subset=["value"])
    groups = list(shown.groupby(["lens", "measure"], sort=False))
    if not groups:
        return None
    if axes is None:
        # a panel with many results (the kernel-alignment models) gets a row of its own, the others three a row
        rows_of_panels, current = [], []
        for _, rows in groups:
            if rows["result"].nunique() > 4:
                rows_of_panels += [current] if current else []
                rows_of_panels.append(["wide"])
                current = []
            else:
                current.append("narrow")
                if len(current) == 3:
                    rows_of_panels.append(current)
                    current = []
        rows_of_panels += [current] if current else []
        ncols = min(3, max(len(r) for r in rows_of_panels))
        # rotated tick labels reach past the axes: the figure is drawn a little narrower than the column
        fig = plt.figure(figsize=(style.BOOK_WIDTH - 0.5, 3.0 * len(rows_of_panels)))
        grid = fig.add_gridspec(len(rows_of_panels), ncols)
        axes = [
            fig.add_subplot(grid[r, :] if kinds == ["wide"] else grid[r, c])
            for r, kinds in enumerate(rows_of_panels)
            for c in range(len(kinds))
        ]
    axes = np.ravel(axes)
    for ax, ((lens, measure), rows) in zip(axes, groups):
        labels = list(dict.fromkeys(rows["result"]))
        shared = rows["control"].nunique() == 1 and len(rows) > 1
        for row in rows.itertuples():
            x_result = labels.index(row.result)
            if shared:  # one control for every result (the null): each result's own value beside it, unlabelled
                x_control = x_result + 0.3
            else:
                x_control = len(labels)
                labels.append(row.control)
            ax.plot([x_result, x_control], [row.value, row.control_value], color="0.8", lw=0.8, zorder=1)
            ax.scatter(x_control, row.control_value, color="0.5", zorder=2)
            ax.scatter(x_result, row.value, color="C0", zorder=3)
        ax.set_xticks(
            range(len(labels)),
            [_short_result(label) for label in labels],
            rotation=40,
            ha="right",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.5, len(labels) - 0.2 if shared else len(labels) - 0.5)
        title = measure if shared else textwrap.fill(measure, 24)  # a narrow panel's title wraps
        ax.set_title(f"{lens.split(' (')[0]}:\n{title}" + (f"\n(grey: {rows['control'].iloc[0]})" if shared else ""))
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    return axes[0].figure


def _short_result(label: str) -> str:
    """A result's tick label: its name without the weights note; a packaged model's build (trained, random) kept."""
    name = label.split(" (")[0]
    for weights in ("trained", "random"):  # a packaged model's two builds
        if label.endswith(f"({weights})"):
            return f"{name}, {weights}"
    return name


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
    neural = xr.open_dataarray(folders["neural_kernels"] / kernel_results.NEURAL_KERNELS_FILE, engine="h5netcdf").load()
    if selected_only and "selected" in neural.coords:
        neural = neural.where(neural["selected"] == 1, drop=True)
    artificial = xr.open_dataarray(
        folders["artificial_kernels"] / kernel_results.ARTIFICIAL_KERNELS_FILE, engine="h5netcdf"
    ).load()
    parameters = pd.read_parquet(folders["artificial_kernels"] / kernel_results.MODEL_PARAMETERS_FILE)["n_parameters"]
    v1t_files = v1t_results.kernel_files(folders["v1t_analysis"]) if folders["v1t_analysis"] else []
    if folders["v1t_analysis"] is not None and not v1t_files:
        missing.append("v1t_analysis")
    size = (neural.sizes["y"], neural.sizes["x"])
    sets = [xr.open_dataarray(path, engine="h5netcdf").load() for path in v1t_files]
    weights = artificial.attrs.get("weights", "random")
    combined = kernel_pipeline.combine_kernel_sets([artificial, *sets], size)
    combined.attrs["weights"] = weights
    v1t_parameters = {}
    for kernels in sets:
        for model in np.unique(kernels["model"].values):
            counts = np.unique(kernels["n_parameters"].values[kernels["model"].values == model])
            v1t_parameters[str(model)] = v1t_parameters.get(str(model), 0.0) + float(counts.sum())
    out.update(
        neural=neural,
        artificial=combined,
        v1t_models=sorted(v1t_parameters),
        model_parameters=pd.concat([parameters, pd.Series(v1t_parameters, dtype=float)]),
    )
    return out


def v1t_alignment(
    neural: xr.DataArray,
    artificial: xr.DataArray,
    *,
    n_bootstrap: int = 200,
    n_permutations: int = 1000,
    random_state: int = 0,
    device="auto",
) -> dict:
    """Kernel alignment of every model (the trained V1T included) by kernel kind, with the null.

    A thin call of :func:`neuroalign_utils.kernels.pipeline.alignment_summary` with the groupings the
    synthesis shows: per model and per (model, kind). ``device`` is where the all-pairs products run
    (see :func:`~neuroalign_utils.kernels.pipeline.alignment_summary`).

    Returns
    -------
    dict
        As :func:`~neuroalign_utils.kernels.pipeline.alignment_summary`, plus ``ranking``: one row per
        model with its mean 1 − RMSE, null, margin, permutation p and rank by margin (1 = largest);
        ``kernel_counts``: per (model, kind) the kernels given and those compared (the similarity
        engine drops constant kernels, such as a uniform attention map).
    """
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    result = kernel_pipeline.alignment_summary(
        neural,
        artificial,
        {"model": ["model"], "kind": ["model", "kind"]},
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        random_state=random_state,
        device=device,
    )
    ranking = result["tables"]["model"][["model", "value", "ci_low", "ci_high", "null_value"]].merge(
        result["tests"][["model", "real_minus_null", "p_real_vs_null"]], on="model"
    )
    ranking["rank_by_margin"] = ranking["real_minus_null"].rank(ascending=False, method="min").astype(int)
    result["ranking"] = ranking.sort_values("rank_by_margin").reset_index(drop=True)
    given = pd.DataFrame(
        {"model": artificial["model"].values.astype(str), "kind": artificial["kind"].values.astype(str)}
    )
    counts = given.value_counts(["model", "kind"]).rename("given").reset_index()
    compared = result["tables"]["kind"][["model", "kind", "n_artificial"]].rename(columns={"n_artificial": "compared"})
    counts = counts.merge(compared, on=["model", "kind"], how="left").fillna({"compared": 0})
    result["kernel_counts"] = counts.astype({"compared": int}).sort_values(["model", "kind"]).reset_index(drop=True)
    return result


def plot_margins(ranking: pd.DataFrame, highlight=(), *, axes=None):
    """Each model's mean 1 − RMSE above its phase-randomised null, with bootstrap intervals.

    Models named in ``highlight`` (the trained V1T) are drawn in orange, the zoo models in blue.
    ``axes`` is the one Axes to draw in (made when ``None``); returns its figure.
    """
    import matplotlib.pyplot as plt

    ax = axes or plt.subplots(figsize=(4.5, 3))[1]
    rows = ranking.sort_values("real_minus_null")
    margin = rows["value"] - rows["null_value"]
    colours = ["C1" if model in set(highlight) else "C0" for model in rows["model"]]
    ax.barh(
        range(len(rows)),
        margin,
        color=colours,
        xerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
        error_kw=dict(lw=0.8),
    )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), rows["model"])
    ax.set(xlabel="mean 1 − RMSE above the null", title="margin over phase-randomised null")
    return ax.figure


def _number(table, chapter, measure, control=None, column="difference"):
    rows = table[(table["chapter"] == chapter) & (table["measure"] == measure)]
    if control is not None:
        rows = rows[rows["control"] == control]
    return float(rows[column].iloc[0]) if len(rows) and np.isfinite(rows[column].iloc[0]) else None


def headline_numbers(
    table: pd.DataFrame, ranking: pd.DataFrame | None = None, v1t_models=(), kernel_counts: pd.DataFrame | None = None
) -> dict:
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
        out["ka_best"] = f"{best['result']}, {report.format_number(best['difference'])} over the null ({best['note']})"
    else:
        out["ka_best"] = missing("kernel_alignment")
    figures = {
        "v1t_vs_cnn": ("v1t_training", "single-trial correlation", "CNN core", "difference", report.format_number),
        "v1t_vs_linear": (
            "v1t_training",
            "single-trial correlation",
            "linear core",
            "difference",
            report.format_number,
        ),
        "v1t_fraction": ("v1t_training", "fraction of the planted noise ceiling", None, "value", report.format_percent),
        "ft_r2": ("factortopy_encoding", "mean test R²", None, "value", report.format_number),
        "ft_slope": ("factortopy_encoding", "hierarchy slope β", None, "value", report.format_number),
        "ft_within_one": (
            "factortopy_encoding",
            "planted layer recovered within one",
            None,
            "difference",
            report.format_percent,
        ),
    }
    for key, (chapter, measure, control, column, fmt) in figures.items():
        value = _number(table, chapter, measure, control, column)
        out[key] = fmt(value) if value is not None else missing(chapter)
    out["chance_cleared"] = "{} of {}".format(*_chance_counts(table))
    v1t_rows_ = ranking[ranking["model"].isin(list(v1t_models))] if ranking is not None else ranking
    if v1t_rows_ is None or not len(v1t_rows_):
        out["v1t_kernel_margin"] = out["v1t_kernel_rank"] = out["v1t_kernels_compared"] = missing("v1t_analysis")
    else:
        row = v1t_rows_.iloc[0]
        out["v1t_kernel_margin"] = (
            f"{report.format_number(row['real_minus_null'])} (permutation {report.format_p(row['p_real_vs_null'])})"
        )
        out["v1t_kernel_rank"] = f"{int(row['rank_by_margin'])} of {len(ranking)}"
        rows = kernel_counts[kernel_counts["model"].isin(list(v1t_models))] if kernel_counts is not None else []
        out["v1t_kernels_compared"] = (
            ", ".join(f"{r.compared} of {r.given} {r.kind.replace('_', ' ')} kernels" for r in rows.itertuples())
            or "not counted"
        )
    return out


# --------------------------------------------------------------------------------------------------
# sentences for the chapter, chosen from the numbers

#: A result clears its control when its permutation p-value is below this (and the margin is positive).
ALPHA = 0.05


def _rows(table, chapter, measure=None):
    rows = table[(table["chapter"] == chapter) & table["value"].notna()]
    return rows if measure is None else rows[rows["measure"] == measure]


def describe_kernel_alignment(table: pd.DataFrame) -> str:
    """The zoo model with the largest margin over its null, whether it clears it (permutation p below
    :data:`ALPHA` and at least the kernel-alignment chapter's meaningful size), and what it can mean."""
    rows = _rows(table, "kernel_alignment")
    rows = rows[~rows["result"].str.contains("trained on V1")]
    if not len(rows):
        return f"The kernel-alignment lens has no results (run {run_hint('kernel_alignment')})."
    best = rows.loc[rows["difference"].idxmax()]
    above = best["difference"] > 0 and best["p_value"] < ALPHA
    meaningful = kernel_analysis.meaningful_margin()  # the size the kernel-alignment chapter asks of a finding
    if above and best["difference"] >= meaningful:
        reading = "so it clears the null"
    elif above:
        reading = (
            f"so it is above the null statistically, but by less than the {report.format_number(meaningful)} "
            f"that r = {kernel_analysis.MEANINGFUL_R:g} above the null would give: negligible in size"
        )
    else:
        reading = "so it does not clear the null"
    text = (
        f"The zoo model with the largest margin over its phase-randomised null is {best['result']}: "
        f"{report.format_number(best['difference'])} in 1 − RMSE ({best['note']}), {reading}."
    )
    if best["result"].endswith(("(random weights)", "(random)")):
        text += (
            " Its weights are random, so whatever margin there is comes from the architecture (filter "
            "sizes, smoothness, how attention spreads over the scenes), not from learning on images."
        )
    if abs(best["difference"]) < 0.01:
        text += (
            f" Near r = 0 a margin Δ in 1 − RMSE is a correlation of about √2·Δ "
            f"= {report.format_number(np.sqrt(2) * best['difference'])}: a very weak correlation, "
            f"detectable only because hundreds of kernels are averaged."
        )
    return text


def describe_v1t_kernels(ranking: pd.DataFrame | None, v1t_models) -> str:
    """Whether the trained V1T's kernels clear their null in the kernel-alignment comparison."""
    rows = ranking[ranking["model"].isin(list(v1t_models))] if ranking is not None else None
    if rows is None or not len(rows):
        return f"No trained V1T kernels were found (run {run_hint('v1t_analysis')})."
    row = rows.iloc[0]
    clears = row["real_minus_null"] > 0 and row["p_real_vs_null"] < ALPHA
    return (
        f"The trained V1T's kernels have a margin of {report.format_number(row['real_minus_null'])} over "
        f"their null (permutation {report.format_p(row['p_real_vs_null'])}), rank "
        f"{int(row['rank_by_margin'])} of {len(ranking)}: they {'clear' if clears else 'do not clear'} it."
    )


def describe_v1t_lens(table: pd.DataFrame) -> str:
    """Whether V1T beats the CNN and linear cores, and how close it gets to the planted ceiling."""
    rows = _rows(table, "v1t_training", "single-trial correlation")
    if not len(rows):
        return f"The V1T lens has no results (run {run_hint('v1t_training')})."
    parts = []
    for control in ("CNN core", "linear core", "V1T without behaviour"):
        row = rows[rows["control"] == control]
        if len(row):
            diff = float(row["difference"].iloc[0])
            verb = "beats" if diff > 0 else "does not beat"
            parts.append(
                f"{verb} the {control.replace(' core', '')} by {report.format_number(diff)}"
                if diff > 0
                else f"{verb} the {control.replace(' core', '')} ({report.format_number(diff)})"
            )
    text = "In single-trial correlation, V1T " + report.join_words(parts) + "."
    fraction = _rows(table, "v1t_training", "fraction of the planted noise ceiling")
    if len(fraction):
        text += f" It reaches {report.format_percent(fraction['value'].iloc[0])} of the planted noise ceiling."
    return text


def describe_factortopy_lens(table: pd.DataFrame) -> str:
    """FactorTopy's R², slope and layer recovery against a random layer choice."""
    r2 = _rows(table, "factortopy_encoding", "mean test R²")
    if not len(r2):
        return f"The FactorTopy lens has no results (run {run_hint('factortopy_encoding')})."
    slope = _rows(table, "factortopy_encoding", "hierarchy slope β")
    text = (
        f"FactorTopy reaches a mean test R² of {report.format_number(r2['value'].iloc[0])} "
        f"(planted ceiling {report.format_number(r2['control_value'].iloc[0])})"
    )
    if len(slope):
        text += f" and a hierarchy slope of {report.format_number(slope['value'].iloc[0])}"
    within = _rows(table, "factortopy_encoding", "planted layer recovered within one")
    if len(within):
        w, chance = within["value"].iloc[0], within["control_value"].iloc[0]
        text += (
            f"; its layer choice is within one layer of the planted one in {report.format_percent(w)} of "
            f"the ROIs, {'more' if w > chance else 'no more'} than the {report.format_percent(chance)} "
            f"a random layer choice would reach"
        )
    return text + "."


def describe_chance(table: pd.DataFrame) -> str:
    """How many results clear a control that stands for chance."""
    n, total = _chance_counts(table)
    return (
        f"{n} of {total} results lie above a control that stands for chance (for kernel "
        f"alignment: a positive margin with permutation p < {ALPHA:g})."
    )


def _chance_counts(table: pd.DataFrame) -> tuple[int, int]:
    """Results above a chance-level control (with p < ALPHA where a test was run), and all such results."""
    chance = table[table["control"].isin(CHANCE_CONTROLS) & table["value"].notna()]
    cleared = (chance["difference"] > 0) & ~(chance["p_value"] >= ALPHA)  # NaN p: no test to pass
    return int(cleared.sum()), len(chance)


# --------------------------------------------------------------------------------------------------
# trained against random, by lens

#: The fields of one trained-versus-random comparison (:class:`~neuroalign_utils.results.TrainedVsRandom`), as
#: chapters write them under the key ``trained_vs_random`` of their headline.
TRAINED_VS_RANDOM_FIELDS = tuple(TrainedVsRandom.field_names())

#: What a lens without trained-versus-random entries has instead (the V1T lens trains its models from scratch).
NO_PRETRAINED_COUNTERPART = {
    LENS_CHAPTERS["v1t_training"]: "trained from scratch on the data; no pretrained counterpart to compare",
}


def trained_vs_random_table(*, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every chapter's trained-versus-random comparisons, read from the ``trained_vs_random`` field of its
    last complete run's headline (:data:`HEADLINES`), in book order, with a row for each lens that has none.

    Returns
    -------
    pandas.DataFrame
        Columns ``chapter`` and :data:`TRAINED_VS_RANDOM_FIELDS`, plus ``note``: for a lens without
        comparisons, why (:data:`NO_PRETRAINED_COUNTERPART`) or which chapter to run; its numbers are NaN.
    """
    rows = []
    for chapter in paper_values.CHAPTERS:
        # not this chapter (running), nor one whose headline holds no comparisons
        folder = _results_dir(chapter, data_dir) if chapter in HEADLINES else None
        if folder is None:
            continue
        for entry in getattr(load_headline(chapter, folder), "trained_vs_random", []):
            if entry.lens not in LENS_CHAPTERS.values():
                raise ValueError(
                    f"A trained_vs_random entry of the '{chapter}' results names the lens "
                    f"{entry.lens!r}; accepted: {sorted(LENS_CHAPTERS.values())}."
                )
            rows.append({"chapter": chapter, **entry.to_dict(), "note": ""})
    found = {row["lens"] for row in rows}
    for chapter, lens in LENS_CHAPTERS.items():
        if lens not in found:
            note = NO_PRETRAINED_COUNTERPART.get(lens) or (
                f"no comparison found: run {run_hint(chapter)}"
                if _results_dir(chapter, data_dir) is None
                else "this lens's results hold no trained-versus-random comparison"
            )
            rows.append(
                {
                    "chapter": chapter,
                    "lens": lens,
                    "model": "—",
                    "quantity": "—",
                    "trained": np.nan,
                    "random": np.nan,
                    "margin": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "note": note,
                }
            )
    lens_order = {lens: i for i, lens in enumerate(LENS_CHAPTERS.values())}
    chapter_order = {chapter: i for i, chapter in enumerate(paper_values.CHAPTERS)}
    table = pd.DataFrame(rows, columns=["chapter", *TRAINED_VS_RANDOM_FIELDS, "note"])
    keys = {"lens": lens_order, "chapter": chapter_order}
    # a lens's rows by chapter, then by model (each chapter's own order kept within a model)
    return table.sort_values(
        ["lens", "chapter", "model"],
        key=lambda column: column.map(keys[column.name]) if column.name in keys else column,
        kind="stable",
    ).reset_index(drop=True)


def describe_trained_vs_random(table: pd.DataFrame) -> str:
    """Per lens, how many trained − random margins lie above 0, below 0, or have an interval that spans 0."""
    texts = []
    for lens, rows in table.groupby("lens", sort=False):
        measured = rows.dropna(subset=["margin"])
        name = lens.split(" (")[0]
        if measured.empty:
            texts.append(f"{name}: {rows['note'].iloc[0]}.")
            continue
        above = int((measured["ci_low"] > 0).sum())
        below = int((measured["ci_high"] < 0).sum())
        n = len(measured)
        if above == n:
            reading = "every trained model differs from its random twin upwards"
        elif below == n:
            reading = "every trained model sits below its random twin"
        else:
            reading = (
                f"{report.format_count(above, n)} margins lie above 0, {report.format_count(below, n)} below, "
                f"and {report.format_count(n - above - below, n)} have a 95 % interval that spans 0"
            )
        models = report.join_words(pd.unique(measured["model"]))
        texts.append(f"{name}: {reading} ({report.plural(n, 'comparison')} of {models}).")
    return " ".join(texts)


def paper_comparisons(*, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every chapter's "paper vs. this run" table, read from its last complete run, one block per chapter."""
    frames = []
    with_values = set(paper_values.paper_values()["chapter"])
    for chapter in (c for c in paper_values.CHAPTERS if c in with_values):
        folder = _results_dir(chapter, data_dir)
        path = None if folder is None else folder / report.PAPER_COMPARISON_FILE
        if path is not None and path.exists():
            frames.append(pd.read_parquet(path).assign(chapter=chapter))
    if not frames:
        return pd.DataFrame(columns=["chapter", "quantity", "paper", "source", "this run", "reading"])
    table = pd.concat(frames, ignore_index=True)
    return table[["chapter", "quantity", "paper", "source", "this run", "reading"]]
