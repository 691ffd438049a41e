"""Sentences that state the V1T chapters' results, with the words chosen from this run's numbers.

Each function takes numbers a chapter computed and returns one sentence (or a short phrase) for its
prose; the thresholds that decide the words are module constants, so a run where V1T loses to the CNN,
or where attention does follow the pupil, reads differently from one where it does not. Numbers are
formatted with :mod:`neuroalign_utils.report`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .. import report

#: Relative-gain intervals (percent) are 95 % bootstrap intervals over neurons; a gain "counts" when its
#: interval excludes 0.
CONFIDENCE = 0.95
#: Significance level for the across-trial correlations (Table 2 analogue).
ALPHA = 0.05
#: Attention "follows" the pupil when, on fixed images, its centre of mass moves by at least this share
#: of the reference move (the planted RF move on synthetic mice, else the shifter's move), with its sign.
FOLLOW_SHARE = 0.25
#: ... and "barely moves" below this share.
STILL_SHARE = 0.05
#: Shares of the pupil's effect on the predictions that passes through the attention weights: below
#: LITTLE_SHARE it is "little", from MOST_SHARE on "most".
LITTLE_SHARE = 0.10
MOST_SHARE = 0.50
#: Ratios within ±RATIO_TOLERANCE of 1 read as "similar" (aRF sizes, B-MLP spread across blocks).
RATIO_TOLERANCE = 0.10
#: A model reaching this fraction of the planted ceiling is "close to" it; below HALF, "less than half".
CLOSE_TO_CEILING = 0.90
#: Readout positions "follow" cortical coordinates from |r| ≥ STRONG_R, "weakly" from WEAK_R.
STRONG_R = 0.5
WEAK_R = 0.2
#: The paper's reference settings (Table A.2 and Section 4.2).
PAPER_SETTINGS = dict(stride=1, emb_dim=155, n_blocks=4, max_epochs=400, n_neurons=7851, n_trials=6000, n_mice=5)
#: The paper's V1T gain over the CNN, percent (Table 1, dataset S).
PAPER_GAIN_OVER_CNN = 12.7


# --------------------------------------------------------------------------------------------------
# Names


def model_label(core: str, behaviour: bool | None = None) -> str:
    """ "V1T with behaviour", "the CNN", "the linear model"... for prose."""
    names = {"v1t": "V1T", "cnn": "the CNN", "linear": "the linear model"}
    name = names.get(core, core)
    if behaviour is None:
        return name
    return f"{name} {'with' if behaviour else 'without'} behaviour"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _percent_change(value: float, *, signed: bool = True) -> str:
    """ "+12.7 %" / "−3.1 %" (one decimal) from a percentage (already × 100); without the sign when
    ``signed`` is False (for "12.7 % higher")."""
    if not report._finite(value):
        return "n/a"
    sign = ("+" if value >= 0 else "−") if signed else ""
    return f"{sign}{abs(value):,.1f} %"


def _share_percent(share: float) -> str:
    """A small share as a percentage with one decimal, "< 0.1 %" below a thousandth."""
    return "< 0.1 %" if 0 <= share < 0.0005 else report.format_percent(share, 1)


# --------------------------------------------------------------------------------------------------
# Training chapter


def relative_gain(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], *, n_boot: int = 2000, seed: int = 0
) -> dict:
    """Relative gain (percent) of model ``a`` over model ``b`` with a paired bootstrap interval.

    Parameters
    ----------
    a, b : mapping of mouse → array ``(n_neurons,)``
        Per-neuron test correlations of the two models on the same neurons.
    n_boot : int, default=2000
        Bootstrap resamples of neurons (within each mouse, the same neurons for both models).

    Returns
    -------
    dict
        ``gain`` = 100 · (mean a / mean b − 1), with the means over neurons, then mice (the paper's
        averaging), and ``low`` / ``high``, the :data:`CONFIDENCE` bootstrap interval of that gain.
    """
    mice = sorted(set(a) & set(b))
    if not mice:
        raise ValueError("'a' and 'b' share no mouse.")
    rng = np.random.default_rng(seed)

    def means(index=None):
        ma, mb = [], []
        for m in mice:
            x, y = np.asarray(a[m], float), np.asarray(b[m], float)
            if index is not None:
                x, y = x[index[m]], y[index[m]]
            ma.append(x.mean())
            mb.append(y.mean())
        return float(np.mean(ma)), float(np.mean(mb))

    mean_a, mean_b = means()
    gains = []
    for _ in range(n_boot):
        index = {m: rng.integers(0, len(a[m]), len(a[m])) for m in mice}
        x, y = means(index)
        gains.append(100 * (x / y - 1))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(gains, [tail, 100 - tail])
    return dict(gain=100 * (mean_a / mean_b - 1), low=float(low), high=float(high), a=mean_a, b=mean_b)


def _verdict(low: float, high: float) -> str:
    """ "higher", "lower" or "indistinguishable" from an interval of a gain."""
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "indistinguishable"


def describe_ranking(average: Mapping[tuple[str, bool], float]) -> str:
    """Which model predicts best, and the order of the rest, from mean single-trial correlations.

    ``average`` maps ``(core, behaviour)`` to the average single-trial correlation.
    """
    ranked = sorted(average.items(), key=lambda item: -item[1])
    (best, best_value), rest = ranked[0], ranked[1:]
    sentence = (
        f"{_capital(model_label(*best))} predicts best (single-trial correlation {report.format_number(best_value, 3)})"
    )
    if rest:
        sentence += ", followed by " + report.join_words(
            f"{model_label(*key)} ({report.format_number(value, 3)})" for key, value in rest
        )
    return sentence + "."


def describe_v1t_vs_cnn(gain: Mapping[str, float] | None, *, paper_gain: float = PAPER_GAIN_OVER_CNN) -> str:
    """Whether V1T beats the CNN (both with behaviour), from :func:`relative_gain` of V1T over the CNN."""
    if gain is None:
        return "V1T and the CNN were not both trained with behaviour in this run, so they are not compared."
    interval = f"95 % bootstrap interval over neurons {report.format_interval(gain['low'], gain['high'])} %"
    paper = f"the paper reports {_percent_change(paper_gain)}"
    verdict = _verdict(gain["low"], gain["high"])
    if verdict == "higher":
        return (
            f"V1T beats the CNN: its single-trial correlation is {_percent_change(gain['gain'], signed=False)} higher "
            f"({interval}; {paper})."
        )
    if verdict == "lower":
        return (
            f"V1T does not beat the CNN here: its single-trial correlation is "
            f"{_percent_change(gain['gain'], signed=False)} lower ({interval}; {paper})."
        )
    return (
        f"V1T and the CNN are indistinguishable here: V1T's single-trial correlation differs by "
        f"{_percent_change(gain['gain'])} ({interval}, which includes 0; {paper})."
    )


def describe_behaviour_gain(core: str, gain: Mapping[str, float] | None) -> str:
    """What behaviour adds to one core, from :func:`relative_gain` of the core with over without behaviour."""
    name = model_label(core)
    if gain is None:
        return (
            f"No {name.removeprefix('the ')} was trained without behaviour in this run, so the gain from "
            f"behaviour is not measured (parameter `without_behaviour`)."
        )
    numbers = (
        f"single-trial correlation {report.format_number(gain['b'], 3)} without, "
        f"{report.format_number(gain['a'], 3)} with: {_percent_change(gain['gain'])}, 95 % interval "
        f"{report.format_interval(gain['low'], gain['high'])} %"
    )
    verdict = _verdict(gain["low"], gain["high"])
    if verdict == "higher":
        return f"Behaviour helps {name} ({numbers})."
    if verdict == "lower":
        return f"Behaviour makes {name} worse ({numbers})."
    return f"Behaviour makes no measurable difference to {name} ({numbers})."


def describe_ceiling(fractions: Mapping[tuple[str, bool], float] | None, ceiling: float | None) -> str:
    """How close the models come to the planted single-trial noise ceiling (synthetic mice only)."""
    if not fractions or ceiling is None or not report._finite(ceiling):
        return (
            "The noise ceiling of recorded mice is not known, so no model's share of the explainable "
            "correlation is stated."
        )
    ranked = sorted(fractions.items(), key=lambda item: -item[1])
    (best, top), (worst, bottom) = ranked[0], ranked[-1]
    if top >= CLOSE_TO_CEILING:
        reach = "close to it: little is left for a better model to explain"
    elif top >= 0.5:
        reach = "well below it: a better model has room to explain more"
    else:
        reach = "less than half: most of the explainable correlation is missed"
    sentence = (
        f"The planted single-trial ceiling is {report.format_number(ceiling, 3)}; the best model, "
        f"{model_label(*best)}, reaches {report.format_percent(top)} of it, {reach}"
    )
    if len(ranked) > 1:
        sentence += f"; {model_label(*worst)} reaches {report.format_percent(bottom)}"
    return sentence + "."


def describe_precision(precisions: Mapping[str, str], device: str | None = None) -> str:
    """Which arithmetic each core was trained in (``core → 'float32' | 'bfloat16' | 'float16'``), and
    where (``device``: words such as :func:`neuroalign_utils.devices.describe_device` returns)."""
    names = {"v1t": "V1T", "cnn": "the CNN", "linear": "the linear model"}
    mixed = {p for _, p in precisions.items() if p != "float32"}  # a dict or a Series
    if not mixed:
        return f"This run trained every model in float32{f' on {device}' if device else ''}."
    sentences = []
    for low in sorted(mixed):
        cores = [names.get(c, c) for c, p in precisions.items() if p == low]
        scaling = ", with loss scaling" if low == "float16" else ""
        sentences.append(
            f"{report.join_words(cores)} in {low} mixed precision (matrix products in {low}{scaling}; "
            "weights, loss, readout and evaluation in float32)"
        )
    rest = [names.get(c, c) for c, p in precisions.items() if p == "float32"]
    sentence = (
        "This run trained " + " and ".join(sentences) + (f" and {report.join_words(rest)} in float32" if rest else "")
    )
    return sentence + (f", on {device}." if device else ".")


def training_conditions(params: Mapping, *, synthetic: bool, short: bool = False) -> str:
    """Why this training run's numbers may differ from the paper's, from its settings.

    ``short=True`` gives the compact form for every row of the paper-vs-run table ("synthetic mice;
    stride 8, 2 blocks × 48, ≤ 8 epochs"); the long form names the sizes and the paper's settings.
    """
    paper = PAPER_SETTINGS
    n_mice = len([m for m in str(params["mice"]).split(",") if m.strip()])
    data, model = [], []
    if synthetic:
        data.append(
            "synthetic mice"
            if short
            else f"synthetic mice ({n_mice} × {params['n_neurons']} neurons, {params['n_trials']} trials)"
        )
    elif n_mice < paper["n_mice"]:
        data.append(f"{n_mice} of the paper's {paper['n_mice']} mice")
    if int(params["stride"]) != paper["stride"]:
        model.append(f"stride {params['stride']}" + ("" if short else f" (paper {paper['stride']})"))
    if int(params["n_blocks"]) < paper["n_blocks"] or int(params["emb_dim"]) < paper["emb_dim"]:
        model.append(
            f"{params['n_blocks']} blocks × {params['emb_dim']}"
            + ("" if short else f" (paper {paper['n_blocks']} × {paper['emb_dim']})")
        )
    if int(params["max_epochs"]) < paper["max_epochs"]:
        model.append(f"≤ {params['max_epochs']} epochs" + ("" if short else f" (paper ≤ {paper['max_epochs']})"))
    if not data and not model:
        return "the paper's data and settings (seeds and hardware differ)"
    if short:
        return "; ".join(part for part in (", ".join(data), ", ".join(model)) if part)
    return ", ".join(data + model)


def describe_paper_agreement(
    v1t_vs_cnn: Mapping | None, behaviour: Mapping | None, cnn_vs_linear: Mapping | None, *, synthetic: bool
) -> str:
    """The reading of the training chapter's paper-vs-run table: which of the paper's orderings hold.

    Each argument is a :func:`relative_gain` (or None where this run did not train both models):
    V1T over the CNN, V1T with over without behaviour, the CNN over the linear model.
    """
    claims = [
        ("V1T beats the CNN", v1t_vs_cnn),
        ("behaviour helps V1T", behaviour),
        ("the CNN beats the linear model", cnn_vs_linear),
    ]
    held = [text for text, gain in claims if gain is not None and _verdict(gain["low"], gain["high"]) == "higher"]
    failed = [text for text, gain in claims if gain is not None and _verdict(gain["low"], gain["high"]) != "higher"]
    tested = len(held) + len(failed)
    if tested == 0:
        sentence = "This run trained too few models to test the paper's orderings."
    elif not failed and tested == 1:
        sentence = f"The one ordering of the paper that this run can test holds: {held[0]}."
    elif not failed:
        sentence = f"All {tested} of the paper's orderings that this run can test hold: {report.join_words(held)}."
    elif not held and tested == 1:
        sentence = f"The one ordering of the paper that this run can test, {failed[0]}, does not hold clearly."
    elif not held:
        sentence = (
            f"None of the paper's {tested} orderings that this run can test holds clearly: "
            f"not {report.join_words(failed)}."
        )
    else:
        sentence = (
            f"Of the paper's {tested} orderings that this run can test, {report.join_words(held)} holds"
            f"{'' if len(held) == 1 else ' (each)'}, but not {report.join_words(failed)}."
        )
    if synthetic:
        sentence += (
            " The absolute correlations are not comparable with the paper's: on synthetic mice their "
            "level is set by the planted noise, so the orderings and relative gains are what carries over."
        )
    return sentence


# --------------------------------------------------------------------------------------------------
# Analysis chapter


def describe_source(run_description: str, models: list[str], mice: list[str]) -> str:
    """Which training run, models and mice the analysis chapter reads."""
    names = [model_label(*split_model_key(m)) for m in models]
    return (
        f"This chapter analyses {run_description}: {report.join_words(names)}, on "
        f"{report.plural(len(mice), 'mouse', 'mice')} ({report.join_words(mice)})."
    )


def split_model_key(key: str) -> tuple[str, bool]:
    """``'v1t_with_behaviour'`` → ``('v1t', True)`` (the training chapter's model file names)."""
    core, _, rest = key.partition("_")
    return core, rest.startswith("with_")


def format_r(r: float) -> str:
    """A correlation coefficient with two decimals ("−0.03", "0.99")."""
    return f"{float(r):.2f}".replace("-", "−") if report._finite(r) else "n/a"


def describe_com_pupil_correlation(table: pd.DataFrame) -> str:
    """The Table 2 analogue: the rollout centre of mass against the pupil centre across test trials.

    ``table`` has one row per mouse and axis: ``mouse``, ``axis``, ``r``, ``p``.
    """
    r = table.groupby("axis")["r"].mean()
    significant = int((table["p"] < ALPHA).sum())
    n = len(table)
    p_range = (
        report.format_p(table["p"].iloc[0])
        if n == 1
        else f"p from {report.format_p(table['p'].min()).removeprefix('p = ')} to "
        f"{report.format_p(table['p'].max()).removeprefix('p = ').removeprefix('p ')}"
    )
    mice = table["mouse"].nunique()
    sentence = (
        f"Across test trials the centre of mass correlates with the pupil centre at r = "
        f"{format_r(r.get('x'))} (x) and {format_r(r.get('y'))} (y)"
        f"{'' if mice == 1 else f', averaged over {mice} mice'}; "
    )
    if significant == 0:
        return sentence + (
            f"no {'axis' if mice == 1 else 'mouse and axis'} reaches p < {ALPHA:g} ({p_range}), "
            "although these p-values, which treat trials as independent, if anything overstate "
            "the evidence."
        )
    return sentence + (
        f"{report.format_count(significant, n)} {'axes' if mice == 1 else 'mouse-axis pairs'} reach "
        f"p < {ALPHA:g} ({p_range}). These p-values treat trials as independent, but test images "
        "repeat while the pupil wanders slowly, so an image shown at a shifted mean pupil position "
        "correlates the two by chance: a small p here is weaker evidence than it looks, and the "
        "fixed-image test below is the cleaner measure."
    )


def _share_of(move: float, reference: float) -> float:
    return move / reference if reference else float("nan")


def _per_axis(values: Mapping[str, float], axes, digits: int = 2, unit: str = " px") -> str:
    """ "2.1 px (x) and 2.4 px (y)"."""
    return report.join_words(f"{report.format_number(values[a], digits)}{unit} ({a})" for a in axes)


def _signed_percent(share: float) -> str:
    return report.format_percent(share).replace("-", "−")


def _direction(subject: str, shares: Mapping[str, float], what: str) -> str:
    """ "the shifter moves with the planted shift along both axes (x: 35 %, y: 40 %)", or per axis
    "… moves against it along x (−51 %) and with it along y (60 %)"; thresholds :data:`FOLLOW_SHARE`."""
    words = {
        a: "with" if v >= FOLLOW_SHARE else "against" if v <= -FOLLOW_SHARE else "barely" for a, v in shares.items()
    }
    listed = ", ".join(f"{a}: {_signed_percent(v)}" for a, v in shares.items())
    if len(set(words.values())) == 1:
        word = next(iter(words.values()))
        if word == "barely":
            return f"{subject} barely moves along either axis ({listed} of {what})"
        return f"{subject} moves {word} {what} along both axes ({listed} of it)"
    pieces = [
        ("barely" if w == "barely" else f"{w} it") + f" along {a} ({_signed_percent(shares[a])})"
        for a, w in words.items()
    ]
    return f"{subject} moves {report.join_words(pieces)}, in shares of {what}"


def describe_attention_and_pupil(
    attention_px: Mapping[str, float],
    shifter_px: Mapping[str, float],
    planted_px: float | None,
    model_px: Mapping[str, float] | None = None,
    *,
    part: str = "all",
) -> str:
    """Where the pupil's shift goes, from fixed-image moves (pupil −2 → +2 SD) along x and y, in pixels.

    Parameters
    ----------
    attention_px : mapping axis → px
        Move of the rollout's centre of mass along the moved pupil axis.
    shifter_px : mapping axis → px
        Move of the readout positions by the shifter along that axis (mean over mice).
    planted_px : float or None
        Planted RF move over the same pupil range (synthetic mice); None for recorded mice.
    model_px : mapping axis → px, optional
        Move of the whole encoder's aRF centres along that axis (median over neurons, mean over mice).

    part : {'all', 'moves', 'verdict'}
        Both sentences, or only the first (the moves) or the second (what they mean).

    The reference a move is measured against is the planted move where known, else the whole model's
    aRF move, else the shifter's. Attention "follows" the pupil from :data:`FOLLOW_SHARE` of the
    reference (with its sign) and "does not move" below :data:`STILL_SHARE` of it.
    """
    if part not in ("all", "moves", "verdict"):
        raise ValueError(f"'part' must be one of ['all', 'moves', 'verdict']; got {part!r}.")
    axes = [a for a in ("x", "y") if a in attention_px]
    if planted_px is not None:
        reference, what = {a: planted_px for a in axes}, "the planted shift"
    elif model_px is not None:
        reference, what = dict(model_px), "the model's aRF move"
    else:
        reference, what = dict(shifter_px), "the shifter's move"
    share = {a: _share_of(attention_px[a], reference[a]) for a in axes}
    moves = []
    if planted_px is not None:
        moves.append(("the planted RFs", f"{report.format_number(planted_px, 2)} px"))
    if model_px is not None:
        moves.append(("the whole model's aRFs", _per_axis(model_px, axes)))
    moves.append(("the shifter's read positions", _per_axis(shifter_px, axes)))
    moves.append(("the rollout's centre of mass", _per_axis(attention_px, axes)))
    listed = [f"{who} {'move ' if i == 0 else ''}by {by}" for i, (who, by) in enumerate(moves)]
    first = f"When only the pupil centre moves, from −2 to +2 standard deviations, {report.join_words(listed)}."

    follows = [a for a in axes if share[a] >= FOLLOW_SHARE]
    if len(follows) == len(axes):
        verdict = (
            "attention follows the pupil, by "
            f"{report.join_words(report.format_percent(share[a]) + f' ({a})' for a in axes)} of {what}"
        )
    elif follows:
        verdict = (
            f"attention follows the pupil along {report.join_words(follows)} only "
            f"({report.join_words(report.format_percent(share[a]) for a in follows)} of {what})"
        )
    elif all(abs(share[a]) < STILL_SHARE for a in axes):
        verdict = f"attention does not move with the pupil (less than {report.format_percent(STILL_SHARE)} of {what})"
    else:
        verdict = (
            f"attention moves only a little with the pupil (at most "
            f"{report.format_percent(max(abs(v) for v in share.values()))} of {what})"
        )
    parts = [verdict]
    if planted_px is not None and model_px is not None:
        parts.append(_direction("the model as a whole", {a: _share_of(model_px[a], planted_px) for a in axes}, what))
    if planted_px is not None or model_px is not None:
        parts.append(_direction("the shifter", {a: _share_of(shifter_px[a], reference[a]) for a in axes}, what))
    second = _capital("; ".join(parts)) + "."
    return {"all": f"{first} {second}", "moves": first, "verdict": second}[part]


def describe_share_through_attention(share: Mapping[str, float]) -> str:
    """How much of the pupil's effect on the predictions passes through the attention weights."""
    top = max(share.values())
    shares = ", ".join(f"{a}: {_share_percent(v)}" for a, v in share.items())
    if top < LITTLE_SHARE:
        return (
            f"Little of the pupil's effect on the predicted responses passes through the attention weights "
            f"({shares}): the V1T uses the pupil through what its tokens carry (values, MLPs, B-MLPs) and the "
            f"shifter, not through where it attends."
        )
    if top < MOST_SHARE:
        return (
            f"Part of the pupil's effect on the predicted responses passes through the attention weights "
            f"({shares}); the rest goes through the values, MLPs, B-MLPs and the shifter."
        )
    return (
        f"Most of the pupil's effect on the predicted responses passes through the attention weights "
        f"({shares}): the V1T uses where it attends to read the pupil."
    )


def describe_arf_positions(errors_px: Mapping[str, float], chance_px: Mapping[str, float]) -> str:
    """Whether the kept aRF fits find the planted RF centres, against a shuffled-neuron chance level."""
    parts, found, missed = [], [], []
    for label, error in errors_px.items():
        chance = chance_px.get(label, float("nan"))
        parts.append(f"{label} {report.format_number(error, 2)} px (chance {report.format_number(chance, 2)} px)")
        (found if error < 0.5 * chance else missed).append({"CNN": "the CNN"}.get(label, label))
    sentence = "Median distance of a kept fit from its unit's planted RF centre: " + report.join_words(parts) + "; "
    if not missed:
        return (
            sentence
            + f"the aRFs of {report.join_words(found)} find the planted RFs (less than half the chance distance)."
        )
    if not found:
        return sentence + (
            f"the aRFs of {report.join_words(missed)} do not find the planted RFs (not below half the chance distance)."
        )
    return sentence + (
        f"the aRFs of {report.join_words(found)} find the planted RFs, those of {report.join_words(missed)} "
        "do not (threshold: half the chance distance)."
    )


def describe_arf_sizes(sigmas: Mapping[str, tuple[float, float]]) -> str:
    """V1T's aRF size against the CNN's.

    ``sigmas`` maps a model label ("V1T", "CNN") to its (horizontal, vertical) Gaussian SD in pixels
    (mean over kept units); the size compared is their geometric mean.
    """
    if "V1T" not in sigmas or "CNN" not in sigmas:
        return "No CNN was trained with behaviour in this run, so V1T's aRF sizes are not compared with a CNN's."
    size = {m: math.sqrt(h * v) for m, (h, v) in sigmas.items()}
    ratio = size["V1T"] / size["CNN"]
    shown = {m: f"{report.format_number(h, 2)} × {report.format_number(v, 2)} px" for m, (h, v) in sigmas.items()}
    numbers = f"σ {shown['V1T']} against {shown['CNN']}, horizontal × vertical"
    if ratio < 1 - RATIO_TOLERANCE:
        return f"V1T's aRFs are narrower than the CNN's ({numbers}), as in the paper."
    if ratio > 1 + RATIO_TOLERANCE:
        return f"V1T's aRFs are wider than the CNN's ({numbers}), unlike the paper, where they are narrower."
    return f"V1T's and the CNN's aRFs are of similar size ({numbers}); in the paper V1T's are narrower."


def bmlp_trend(spread: Mapping[int, float]) -> str:
    """ "rises", "falls" or "stays" for the B-MLP spread from the first to the last block."""
    blocks = sorted(spread)
    ratio = spread[blocks[-1]] / spread[blocks[0]] if spread[blocks[0]] else float("inf")
    if ratio > 1 + RATIO_TOLERANCE:
        return "rises"
    if ratio < 1 - RATIO_TOLERANCE:
        return "falls"
    return "stays"


def describe_bmlp_spread(spread: Mapping[int, float]) -> str:
    """How the spread over trials of the B-MLP outputs changes with depth (paper Fig. A.3: it rises)."""
    blocks = sorted(spread)
    trend = bmlp_trend(spread)
    values = report.join_words(f"{report.format_number(spread[b], 2)} (block {b})" for b in blocks)
    words = {
        "rises": "rises with depth, as in the paper",
        "falls": "falls with depth, unlike the paper, where it rises",
        "stays": "stays about the same across blocks, unlike the paper, where it rises",
    }[trend]
    return f"The spread of the B-MLP outputs over trials {words}: {values}."


def describe_pupil_dilation(by_pupil: pd.DataFrame, model: str = "v1t_with_behaviour") -> str:
    """Large-pupil against small-pupil thirds of the test trials (paper Fig. A.5: +17.5 %)."""
    table = by_pupil[by_pupil["model"] == model]
    means = table.groupby("pupil_group")["single_trial_correlation"].mean()
    small, large = float(means.iloc[0]), float(means.iloc[-1])
    change = 100 * (large / small - 1)
    name = model_label(*split_model_key(model))
    numbers = (
        f"{report.format_number(large, 3)} on the third of test trials with the largest pupil, "
        f"{report.format_number(small, 3)} on the smallest: {_percent_change(change)}; the paper reports +17.5 %"
    )
    if change > 100 * RATIO_TOLERANCE:
        return f"{_capital(name)} predicts large-pupil trials better ({numbers})."
    if change < -100 * RATIO_TOLERANCE:
        return f"{_capital(name)} predicts large-pupil trials worse ({numbers})."
    return f"{_capital(name)} predicts large- and small-pupil trials about equally well ({numbers})."


def describe_retinotopy(r_x: float, r_y: float) -> str:
    """Whether the readout positions follow the neurons' cortical coordinates."""
    numbers = f"r = {format_r(r_x)} (x) and {format_r(r_y)} (y)"
    weakest = min(abs(r_x), abs(r_y))
    if weakest >= STRONG_R:
        return (
            f"The readout positions follow the cortical coordinates ({numbers}): "
            "the readout has learned the retinotopy."
        )
    if max(abs(r_x), abs(r_y)) >= WEAK_R:
        return f"The readout positions follow the cortical coordinates only weakly ({numbers})."
    return f"The readout positions do not follow the cortical coordinates ({numbers})."


def analysis_conditions(params: Mapping, *, synthetic: bool, n_noise_images: int) -> Mapping[str, str]:
    """Why the analysis chapter's numbers may differ from the paper's, per paper-table key."""
    paper = PAPER_SETTINGS
    small = (
        int(params["stride"]) != paper["stride"]
        or int(params["n_blocks"]) < paper["n_blocks"]
        or int(params["emb_dim"]) < paper["emb_dim"]
        or int(params["max_epochs"]) < paper["max_epochs"]
    )
    model = (
        ", ".join(([("synthetic mice")] if synthetic else []) + (["a small, briefly trained V1T"] if small else []))
        or "the paper's data and settings"
    )
    arf = f"{model}; models with behaviour, {n_noise_images:,} noise images (paper: without, 500,000)"
    com = model + ("; the planted pupil shift needs no attention (the shifter can carry it)" if synthetic else "")
    return {
        "com_pupil_r_x": com,
        "com_pupil_r_y": com,
        "arf_sigma_x_transformer": arf,
        "arf_sigma_y_transformer": arf,
        "arf_sigma_x_cnn": arf,
        "arf_sigma_y_cnn": arf,
        "bmlp_spread_by_block": model,
    }


def describe_analysis_vs_paper(
    com_abs_r: Mapping[str, float], com_p: float, sigmas: Mapping[str, tuple[float, float]], bmlp: str
) -> str:
    """The reading of the analysis chapter's paper-vs-run table."""
    agree, differ = [], []
    strong = min(com_abs_r.values()) >= 0.3 and com_p < ALPHA
    (agree if strong else differ).append("a centre of mass that correlates with the pupil centre")
    if "V1T" in sigmas and "CNN" in sigmas:
        ratio = math.sqrt(math.prod(sigmas["V1T"]) / math.prod(sigmas["CNN"]))
        (agree if ratio < 1 - RATIO_TOLERANCE else differ).append("V1T aRFs narrower than the CNN's")
    (agree if bmlp == "rises" else differ).append("a B-MLP spread that rises with depth")
    if not differ:
        return f"This run agrees with the paper on {report.join_words(agree)}."
    if not agree:
        return f"This run reproduces none of the paper's findings in this table: not {report.join_words(differ)}."
    return f"This run agrees with the paper on {report.join_words(agree)}, but not on {report.join_words(differ)}."
