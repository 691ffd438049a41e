"""The V1T lens's pipeline: what the "V1T training" chapter runs, and how the analysis chapter reads it back.

Load the mice (:func:`load_data`), train one encoder per (core, behaviour) on them (:func:`run_experiment`),
tabulate the test correlations (:func:`results_table`), and rebuild a finished run (:func:`load_run`).
Its figures are in :mod:`~neuroalign_utils.v1t.figures`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import devices
from .._validation import check_subset
from . import loading, metrics, synthetic, training
from .cores import CORES
from .models import build_encoder

logger = logging.getLogger(__name__)


def model_config(
    core: str, use_behaviour: bool, data: dict, core_options: dict | None = None, image_size=(36, 64)
) -> dict:
    """Plain config of an encoder for the mice in ``data`` (see :func:`models.build_encoder`)."""
    check_subset(core, "core", list(CORES))
    return dict(
        core=core,
        core_options=dict(core_options or {}),
        readout_options={},
        use_behaviour=bool(use_behaviour),
        image_size=tuple(image_size),
        mice={k: m.n_neurons for k, m in data.items()},
    )


def load_data(data_folder: str, mice: str, *, n_neurons: int, n_trials: int, seed: int) -> dict:
    """The chapter's data: the mice (comma-separated letters) from ``data_folder``, or synthetic ones."""
    letters = [m.strip() for m in mice.split(",") if m.strip()]
    if data_folder:
        root = data_folder
    else:
        root = synthetic.write_synthetic_sensorium(mice=letters, n_neurons=n_neurons, n_trials=n_trials, seed=seed)
    return loading.load_sensorium(root, letters)


def load_run(run_dir: str | os.PathLike, *, device="cpu") -> tuple[dict, dict, dict]:
    """Parameters, data and trained models of a "V1T training" run folder.

    Returns ``(parameters, data, models)`` with models keyed like ``'v1t_with_behaviour'``, on ``device``
    (``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'``; see
    :func:`neuroalign_utils.devices.resolve_device`), where the analyses of :mod:`.analysis` then run.
    """
    device = devices.resolve_device(device)
    run_dir = Path(run_dir)
    params = json.loads((run_dir / "parameters.json").read_text())
    model_files = sorted((run_dir / "models").glob("*.pt"))
    if not model_files:
        raise FileNotFoundError(f"No trained models under {run_dir / 'models'}; run the 'v1t_training' chapter first.")
    data = load_data(
        params["data_folder"],
        params["mice"],
        n_neurons=params["n_neurons"],
        n_trials=params["n_trials"],
        seed=params["seed"],
    )
    return params, data, {p.stem: training.load_model(p, device=device) for p in model_files}


def planted_expected_responses(data: dict) -> dict | None:
    """Noise-free expected responses in the loader's standardised units, or None for real data."""
    try:
        return {
            k: loading.load_planted_truth(m.folder)["expected_responses"] / m.response_scale for k, m in data.items()
        }
    except FileNotFoundError:
        return None


def run_experiment(
    data: dict,
    runs: list[tuple[str, bool]],
    *,
    core_options: dict[str, dict],
    results_dir: str | os.PathLike,
    seed: int = 0,
    **train_options,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train one encoder per ``(core, use_behaviour)`` in ``runs``; evaluate on the test tier.

    Models go to ``results_dir/models/<core>_<with|without>_behaviour.pt`` and checkpoints to
    ``results_dir/checkpoints/…`` (a rerun with the same parameters resumes or reuses them).
    ``train_options`` go to :func:`training.train`, ``device`` among them (default ``'auto'``: a GPU
    when there is one); evaluation runs where the model was trained.

    Returns
    -------
    results : DataFrame
        One row per (model, mouse): the columns of :func:`training.evaluate` plus ``core``,
        ``behaviour`` and ``n_parameters`` (core).
    histories : DataFrame
        Per-epoch training history with ``core`` and ``behaviour`` columns.
    neurons : DataFrame
        One row per (model, mouse, neuron): its test ``single_trial_correlation``, for paired
        comparisons of two models on the same neurons (:func:`neuroalign_utils.v1t.findings.relative_gain`).
    """
    results_dir = Path(results_dir)
    expected = planted_expected_responses(data)
    tables, histories, neurons = [], [], []
    for core, use_behaviour in runs:
        tag = f"{core}_{'with' if use_behaviour else 'without'}_behaviour"
        torch.manual_seed(seed)  # weight initialisation; training itself is seeded inside train()
        model = build_encoder(
            model_config(core, use_behaviour, data, core_options.get(core)), {k: m.coordinates for k, m in data.items()}
        )
        history = training.train(
            model, data, seed=seed, checkpoint_dir=results_dir / "checkpoints" / tag, **train_options
        )
        training.save_model(model, results_dir / "models" / f"{tag}.pt")
        table = training.evaluate(model, data, expected=expected)
        n_params = sum(p.numel() for p in model.core.parameters())
        tables.append(table.assign(core=core, behaviour=use_behaviour, n_parameters=n_params))
        histories.append(history.assign(core=core, behaviour=use_behaviour))
        for name, mouse in data.items():
            trials = mouse.tier("test")
            corr = metrics.single_trial_correlation(mouse.responses[trials], training.predict(model, mouse, trials))
            neurons.append(
                pd.DataFrame(
                    {
                        "core": core,
                        "behaviour": use_behaviour,
                        "mouse": name,
                        "neuron": np.arange(len(corr)),
                        "single_trial_correlation": corr,
                    }
                )
            )
        logger.info("%s: test single-trial correlation %.3f", tag, table["single_trial_correlation"].mean())
    return (
        pd.concat(tables, ignore_index=True),
        pd.concat(histories, ignore_index=True),
        pd.concat(neurons, ignore_index=True),
    )


def results_table(results: pd.DataFrame, metric: str = "single_trial_correlation") -> pd.DataFrame:
    """Table 1 / A.3 layout: rows (core, behaviour) in :func:`model_order`, columns mice + average + Δ%
    vs the CNN with the same behaviour setting."""
    wide = results.pivot_table(index=["core", "behaviour"], columns="mouse", values=metric)
    wide = wide.loc[model_order(wide.index)]
    wide.columns = [f"mouse {loading.mouse_label(c)}" for c in wide.columns]
    wide["average"] = wide.mean(axis=1)
    cnn = {b: wide.loc[("cnn", b), "average"] for b in wide.index.get_level_values(1) if ("cnn", b) in wide.index}
    wide["Δ% vs CNN"] = [
        100 * (v / cnn[b] - 1) if b in cnn else np.nan for (c, b), v in zip(wide.index, wide["average"])
    ]
    return wide


#: Plot order of the cores.
CORE_ORDER = ("v1t", "cnn", "linear")


def model_order(keys) -> list[tuple[str, bool]]:
    """``(core, behaviour)`` pairs in reading order: V1T, CNN, linear; with behaviour first."""
    rank = {c: i for i, c in enumerate(CORE_ORDER)}
    return sorted(set(keys), key=lambda k: (rank.get(k[0], len(rank)), not k[1]))


def short_label(core: str, behaviour: bool) -> str:
    """ "V1T + behaviour", "CNN − behaviour", "linear + behaviour" (figure labels)."""
    name = {"v1t": "V1T", "cnn": "CNN"}.get(core, core)
    return f"{name} {'+' if behaviour else '−'} behaviour"
