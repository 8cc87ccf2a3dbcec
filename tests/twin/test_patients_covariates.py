"""Covariate models of MODELS.md §3: CrCl, CPIC genotypes, proteomics, DDI; library and patient files."""

from __future__ import annotations

import pytest

from twin.drugs import DrugFileError, UnknownDrugError, known_drugs, load_drug
from twin.drugs.library import REFERENCE_CRCL_ML_MIN
from twin.errors import TwinError, UnitError
from twin.patients import (
    Comedication,
    GenotypeError,
    Patient,
    PatientError,
    activity_ratio,
    activity_score,
    cockcroft_gault_ml_per_min,
    enzyme_capacity,
    individual_pk,
    load_patient,
    parse_diplotype,
    patient_from_dict,
    patient_pk,
    phenotype,
)
from twin.units import Q_


@pytest.mark.parametrize(
    "age, weight, scr, female, expected",
    [
        (40, 70, 1.0, False, 100 * 70 / 72),  # 97.22 mL/min
        (40, 70, 1.0, True, 0.85 * 100 * 70 / 72),  # 82.64
        (80, 60, 1.5, False, 60 * 60 / (72 * 1.5)),  # 33.33
        (80, 60, 1.5, True, 0.85 * 60 * 60 / (72 * 1.5)),  # 28.33
    ],
)
def test_cockcroft_gault(age, weight, scr, female, expected):
    assert float(cockcroft_gault_ml_per_min(age, weight, scr, female)) == pytest.approx(expected, rel=1e-12)


CYP2D6_CASES = [  # diplotype, score, phenotype: every allele value, duplication and score band
    ("*1/*1", 2.0, "NM"),
    ("*1/*2", 2.0, "NM"),
    ("*2/*2", 2.0, "NM"),
    ("*1/*9", 1.5, "NM"),
    ("*1/*17", 1.5, "NM"),
    ("*1/*29", 1.5, "NM"),
    ("*1/*41", 1.5, "NM"),
    ("*1/*10", 1.25, "NM"),
    ("*41/*41", 1.0, "IM"),
    ("*1/*4", 1.0, "IM"),
    ("*9/*10", 0.75, "IM"),
    ("*10/*10", 0.5, "IM"),
    ("*4/*10", 0.25, "IM"),
    ("*3/*4", 0.0, "PM"),
    ("*4/*5", 0.0, "PM"),
    ("*6/*6", 0.0, "PM"),
    ("*4x2/*5", 0.0, "PM"),
    ("*1x2/*1", 3.0, "UM"),
    ("*1x2/*4", 2.0, "NM"),
    ("*41x2/*1", 2.0, "NM"),
    ("*2x3/*4", 3.0, "UM"),
    ("*1/*9x2", 2.0, "NM"),
    ("*1x2/*41", 2.5, "UM"),
]


@pytest.mark.parametrize("diplotype, score, expected", CYP2D6_CASES)
def test_cyp2d6_activity_score_and_phenotype(diplotype, score, expected):
    parsed = parse_diplotype("CYP2D6", diplotype)
    assert activity_score(parsed) == score
    assert phenotype(parsed) == expected
    assert activity_ratio(parsed) == score / 2


@pytest.mark.parametrize(
    "diplotype, expected",
    [
        ("*2/*2", "PM"),
        ("*2/*3", "PM"),
        ("*3/*3", "PM"),
        ("*1/*2", "IM"),
        ("*1/*3", "IM"),
        ("*2/*17", "IM"),
        ("*1/*1", "NM"),
        ("*1/*17", "RM"),
        ("*17/*1", "RM"),
        ("*17/*17", "UM"),
    ],
)
def test_cyp2c19_phenotype(diplotype, expected):
    assert phenotype(parse_diplotype("CYP2C19", diplotype)) == expected


def test_cyp2c19_activity_orders_phenotypes():
    ratios = [activity_ratio(parse_diplotype("CYP2C19", d)) for d in ("*2/*2", "*1/*2", "*1/*1", "*1/*17", "*17/*17")]
    assert ratios == sorted(ratios) and ratios[0] == 0 and ratios[2] == 1


@pytest.mark.parametrize(
    "gene, text, message",
    [
        ("CYP2D6", "*1/*99", r"unknown allele '\*99'; known alleles: \*1, \*2"),
        ("CYP2C19", "*1/*4", r"known alleles: \*1, \*2, \*3, \*17"),
        ("CYP2D6", "*1", "two alleles"),
        ("CYP2C19", "*17x2/*1", "copy numbers are only read for CYP2D6"),
        ("CYP9Z9", "*1/*1", "unknown gene 'CYP9Z9'; the twin knows: CYP2D6, CYP2C19"),
    ],
)
def test_bad_genotypes_name_what_is_known(gene, text, message):
    with pytest.raises(GenotypeError, match=message):
        parse_diplotype(gene, text)


def test_competitive_ddi_divides_only_the_inhibited_share():
    midazolam = load_drug("midazolam")  # fm CYP3A4 0.94
    patient = Patient(40, "male", 70, 1.0, comedications=(Comedication("ketoconazole", 0.015),))  # I_u = Ki
    alone = Patient(40, "male", 70, 1.0)
    assert enzyme_capacity(midazolam.fm, {}, {"CYP3A4": 2.0}) == pytest.approx(0.06 + 0.94 / 2)
    inhibited, _ = patient_pk(midazolam, patient)
    reference, _ = patient_pk(midazolam, alone)
    assert inhibited.cl_l_per_h[0] < reference.cl_l_per_h[0] and inhibited.f_oral[0] > reference.f_oral[0]
    expected = individual_pk(midazolam, 70.0, alone.crcl_ml_per_min, 0.06 + 0.94 / 2)
    assert inhibited.cl_l_per_h[0] == pytest.approx(float(expected.cl_l_per_h))
    # two competitive inhibitors of one enzyme add: 1 + I1/Ki + I2/Ki
    both = Patient(40, "male", 70, 1.0, comedications=(Comedication("ketoconazole", 0.015),) * 2)
    assert patient_pk(midazolam, both)[0].cl_l_per_h[0] == pytest.approx(
        float(individual_pk(midazolam, 70.0, alone.crcl_ml_per_min, 0.06 + 0.94 / 3).cl_l_per_h)
    )


def test_genotype_and_proteomics_scale_the_enzyme_share():
    metoprolol = load_drug("metoprolol")  # fm CYP2D6 0.8
    poor = Patient(40, "male", 70, 1.0, genotypes={"CYP2D6": parse_diplotype("CYP2D6", "*4/*4")})
    normal = Patient(40, "male", 70, 1.0, genotypes={"CYP2D6": parse_diplotype("CYP2D6", "*1/*1")})
    crcl = normal.crcl_ml_per_min
    assert patient_pk(metoprolol, poor)[0].cl_l_per_h[0] == pytest.approx(
        float(individual_pk(metoprolol, 70.0, crcl, 0.2).cl_l_per_h)
    )
    # measured abundance at twice the reference replaces the genotype for that enzyme
    measured = Patient(40, "male", 70, 1.0, genotypes=poor.genotypes, abundance_pmol_per_mg={"CYP2D6": 16.0})
    assert patient_pk(metoprolol, measured)[0].cl_l_per_h[0] == pytest.approx(
        float(individual_pk(metoprolol, 70.0, crcl, 0.2 + 0.8 * 2).cl_l_per_h)
    )
    untyped, assumptions = patient_pk(metoprolol, Patient(40, "male", 70, 1.0))
    assert untyped.cl_l_per_h[0] == pytest.approx(patient_pk(metoprolol, normal)[0].cl_l_per_h[0])
    assert assumptions == ["CYP2D6 genotype not given: normal metaboliser assumed"]


def test_renal_clearance_scales_with_crcl():
    metoprolol = load_drug("metoprolol")
    full, half = (individual_pk(metoprolol, 70.0, crcl, 1.0) for crcl in (REFERENCE_CRCL_ML_MIN, 50.0))
    assert float(full.cl_l_per_h - half.cl_l_per_h) == pytest.approx(metoprolol.cl_renal_ref_l_per_h / 2)


@pytest.mark.parametrize("name", [d for d in known_drugs() if d not in ("ketoconazole", "example_chip_compound")])
def test_reference_adult_reproduces_the_observed_clearance_of_each_library_drug(name):
    import tomllib

    from twin.drugs.library import LIBRARY

    entry = tomllib.loads((LIBRARY / f"{name}.toml").read_text())["properties"]["cl_plasma"]
    observed_l_per_h = Q_(entry["value"], entry["unit"]).to("L/h/kg").magnitude * 70
    pk = individual_pk(load_drug(name), 70.0, REFERENCE_CRCL_ML_MIN, 1.0)
    assert float(pk.cl_l_per_h) == pytest.approx(observed_l_per_h, rel=1e-12)
    assert 0 < float(pk.f_oral) <= 1


def test_drug_library_errors(tmp_path):
    with pytest.raises(UnknownDrugError, match="unknown drug 'aspirin'; the library has: caffeine, .*midazolam"):
        load_drug("aspirin")
    with pytest.raises(DrugFileError, match="inhibitor only"):
        load_drug("ketoconazole")
    (tmp_path / "broken.toml").write_text(
        'name = "broken"\n[properties]\nfu_p = { value = 0.1, unit = "dimensionless", source = "x" }\n'
    )
    with pytest.raises(DrugFileError, match=r"broken.toml: properties.molecular_weight is missing"):
        load_drug("broken", tmp_path)
    (tmp_path / "badunit.toml").write_text('[properties]\nmolecular_weight = { value = 300, unit = "mg/L" }\n')
    with pytest.raises(UnitError, match=r"badunit.toml: properties.molecular_weight"):
        load_drug("badunit", tmp_path)
    (tmp_path / "nounit.toml").write_text('[properties]\nmolecular_weight = { value = 300, unit = "gramz" }\n')
    with pytest.raises(DrugFileError, match=r"nounit.toml: properties.molecular_weight: cannot read"):
        load_drug("nounit", tmp_path)
    (tmp_path / "bare.toml").write_text("[properties]\nmolecular_weight = 300\n")
    with pytest.raises(DrugFileError, match=r"bare.toml: properties.molecular_weight: write it as"):
        load_drug("bare", tmp_path)


PATIENT_TOML = """
id = "P-7"
age = "54 years"
sex = "female"
weight = "72 kg"
serum_creatinine = "80 umol/L"

[genotype]
CYP2D6 = "*1x2/*4"
CYP2C19 = "*1/*17"

[abundance]
CYP3A4 = 95.0

[[comedication]]
drug = "ketoconazole"
unbound_concentration = "15 nM"
"""


def test_patient_file_round_trip(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PATIENT_TOML)
    patient = load_patient(path)
    assert patient.scr_mg_per_dl == pytest.approx(80 * 113.12 / 10_000)  # µmol/L → mg/dL
    assert patient.crcl_ml_per_min == pytest.approx(0.85 * (140 - 54) * 72 / (72 * patient.scr_mg_per_dl))
    assert activity_score(patient.genotypes["CYP2D6"]) == 2.0
    assert patient.comedications == (Comedication("ketoconazole", pytest.approx(0.015)),)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"weight": None}, "p.toml: weight is missing"),
        ({"genotype": {"CYP2D6": "*1/*99"}}, r"p.toml: CYP2D6: unknown allele '\*99'; known alleles"),
        ({"sex": "other"}, "sex must be 'male' or 'female'"),
        ({"weight": "72 L"}, "p.toml: weight"),
        ({"comedication": [{"drug": "grapefruit", "unbound_concentration": "1 uM"}]}, "unknown drug 'grapefruit'"),
        ({"abundance": {"CYP9Z9": 1.0}}, "no reference abundance for enzyme 'CYP9Z9'"),
        ({"height": "170 cm"}, "unknown key"),
        ({"abundance": {"CYP3A4": "high"}}, "abundance.CYP3A4 must be a number"),
    ],
)
def test_patient_file_errors_name_file_and_key(change, message):
    data = {"age": "54 years", "sex": "female", "weight": "72 kg", "serum_creatinine": "0.9 mg/dL"}
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(TwinError, match=message):
        patient_from_dict(data, "p.toml")


def test_missing_patient_file():
    with pytest.raises(PatientError, match="does not exist"):
        load_patient("/nonexistent/patient.toml")
