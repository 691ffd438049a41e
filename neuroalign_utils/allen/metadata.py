"""Allen Brain Observatory vocabulary: visual areas, Cre lines and the genotypes of Jalil et al. Table S1."""

from __future__ import annotations

import pandas as pd

#: Visual areas of the Visual Coding 2P release (allensdk's ``targeted_structure`` acronyms).
AREAS: tuple[str, ...] = ("VISp", "VISl", "VISal", "VISpm", "VISam", "VISrl")

#: Inhibitory Cre lines (short names); the other lines label excitatory neurons.
INHIBITORY_CRE: tuple[str, ...] = ("Sst", "Vip", "Pvalb")

#: Supplementary Table S1 of Jalil et al.: genotype abbreviation → full genotype.
GENOTYPES: dict[str, str] = {
    "Cux2_1": "Cux2-CreERT2/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Rbp4_1": "Rbp4-Cre_KL100/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Cux2_2": "Cux2-CreERT2/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Slc17a7_1": "Slc17a7-IRES2-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Cux2_3": "Cux2-CreERT2/Cux2-CreERT2;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Emx1_1": "Emx1-IRES-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Rorb_1": "Rorb-IRES2-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Fezf2": "Fezf2-CreER/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt",
    "Scnn1a_1": "Scnn1a-Tg3-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Ntsr1": "Ntsr1-Cre_GN220/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt",
    "Rbp4_2": "Rbp4-Cre_KL100/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Emx1_2": "Emx1-IRES-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Nr5a1_1": "Nr5a1-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Nr5a1_2": "Nr5a1-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Rorb_2": "Rorb-IRES2-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt",
    "Tlx3": "Tlx3-Cre_PL56/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt",
    "Slc17a7_2": "Slc17a7-IRES2-Cre/wt;Camk2a-tTA/wt;Ai94(TITL-GCaMP6s)/wt",
    "Emx1_3": "Emx1-IRES-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)-hyg/wt",
    "Scnn1a_2": "Scnn1a-Tg3-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/Ai93(TITL-GCaMP6f)",
    "Vip": "Vip-IRES-Cre/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt",
    "Pvalb": "Pvalb-IRES-Cre/wt;Ai162(TIT2L-GC6s-ICL-tTA2)/wt",
    "Sst": "Sst-IRES-Cre/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt",
}


def cre_full_name(genotype: str) -> str:
    """The Cre driver of a full genotype: its first ``;``-separated allele without ``/...``."""
    return genotype.split(";")[0].split("/")[0]


def cre_short_name(cre_line: str) -> str:
    """``'Cux2-CreERT2'`` → ``'Cux2'`` (the gene before the first dash)."""
    return cre_line.split("-")[0]


def reporter_name(genotype: str) -> str:
    """The reporter allele (the ``Ai...`` line) of a full genotype."""
    for allele in genotype.split(";"):
        name = allele.split("/")[0]
        if name.startswith("Ai"):
            return name
    return ""


def indicator_name(genotype: str) -> str:
    """``'GCaMP6f'`` or ``'GCaMP6s'``, read from the reporter allele."""
    reporter = reporter_name(genotype)
    return "GCaMP6s" if ("GCaMP6s" in reporter or "GC6s" in reporter) else "GCaMP6f"


def cell_class(cre_line: str) -> str:
    """``'inhibitory'`` for Sst, Vip and Pvalb lines, else ``'excitatory'``."""
    return "inhibitory" if cre_short_name(cre_line) in INHIBITORY_CRE else "excitatory"


def genotype_abbreviation(genotype: str) -> str:
    """Table S1 abbreviation of a full genotype; unknown genotypes keep their full string."""
    return _ABBREVIATION.get(genotype, genotype)


_ABBREVIATION = {full: short for short, full in GENOTYPES.items()}

#: Cre lines (short names) in Table S1 order of first appearance.
CRE_LINES: tuple[str, ...] = tuple(dict.fromkeys(cre_short_name(cre_full_name(g)) for g in GENOTYPES.values()))


def genotype_table() -> pd.DataFrame:
    """Table S1 as a DataFrame: abbreviation, full genotype, Cre line, reporter, indicator, class."""
    rows = []
    for abbreviation, full in GENOTYPES.items():
        cre = cre_full_name(full)
        rows.append(
            {
                "abbreviation": abbreviation,
                "genotype": full,
                "cre_line": cre,
                "cre": cre_short_name(cre),
                "reporter": reporter_name(full),
                "indicator": indicator_name(full),
                "cell_class": cell_class(cre),
            }
        )
    return pd.DataFrame(rows)
