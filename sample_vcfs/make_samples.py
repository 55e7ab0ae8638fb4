#!/usr/bin/env python3
"""Write the small synthetic sample VCFs used by varreinterp's tests, docs and demos.

Why: real ClinVar releases are large and patient genomes private, yet every trap the tool must
survive needs an end-to-end case with a known answer: the 2024 vocabulary renames, `|`-joined
and comma-containing terms, records without CLNSIG, `chr1`/`1` and `chrM`/`MT` naming,
multi-allelic records, padded indels, hom-ref, no-calls, half-calls, filtered records, trios.
Writes two ClinVar-format GRCh38 releases (2024-01-07 pre-rename, 2024-06-02 post-rename) with
a documented set of reclassifications, patient_single.vcf.gz (+.tbi), trio.vcf and README.md
into --out (default: this script's directory).

All values are invented; REF bases come from a deterministic pseudo-reference (a hash of
contig:position), not GRCh38. Output is byte-for-byte reproducible (no randomness, no
timestamps). pysam is needed only for BGZF compression and the tabix index.
"""
import argparse
import hashlib
import os
import re
from pathlib import Path

OLD, NEW = 0, 1
RELEASES = {OLD: "2024-01-07", NEW: "2024-06-02"}
CONTIGS = [(str(i), n) for i, n in enumerate([
    248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973, 145138636,
    138394717, 133797422, 135086622, 133275309, 114364328, 107043718, 101991189, 90338345,
    83257441, 80373285, 58617616, 64444167, 46709983, 50818468], start=1)]
CONTIGS += [("X", 156040895), ("Y", 57227415), ("MT", 16569)]
ORDER = {c: i for i, (c, _) in enumerate(CONTIGS)}
LENGTH = dict(CONTIGS)
REFSEQ = {"1": "NC_000001.11", "2": "NC_000002.12", "3": "NC_000003.12", "5": "NC_000005.10",
          "6": "NC_000006.12", "7": "NC_000007.14", "10": "NC_000010.11", "11": "NC_000011.10",
          "13": "NC_000013.11", "14": "NC_000014.9", "17": "NC_000017.11", "19": "NC_000019.10",
          "X": "NC_000023.11", "MT": "NC_012920.1"}

# Vocabulary per release: index OLD = pre-rename terms, NEW = post-rename terms.
CONFLICT = ("Conflicting_interpretations_of_pathogenicity",
            "Conflicting_classifications_of_pathogenicity")
REVSTAT = {  # key: (old term, new term, stars)
    "guideline": ("practice_guideline", "practice_guideline", 4),
    "expert": ("reviewed_by_expert_panel", "reviewed_by_expert_panel", 3),
    "multi": ("criteria_provided,_multiple_submitters,_no_conflicts",) * 2 + (2,),
    "single": ("criteria_provided,_single_submitter",) * 2 + (1,),
    "conf": ("criteria_provided,_conflicting_interpretations",
             "criteria_provided,_conflicting_classifications", 1),
    "nocrit": ("no_assertion_criteria_provided",) * 2 + (0,),
    "noclass": ("no_assertion_provided", "no_classification_provided", 0),
    "nosingle": ("no_interpretation_for_the_single_variant",
                 "no_classification_for_the_single_variant", 0),
}
ABBR = {"VUS": "Uncertain_significance", "LP": "Likely_pathogenic", "P": "Pathogenic",
        "LB": "Likely_benign", "B": "Benign"}
GENES = {}  # symbol: (GeneID, CLNDN, CLNDISDB)
for _line in """
MUTYH    4595   Familial_adenomatous_polyposis_2        MONDO:MONDO:0012041,MedGen:C3272841
PCSK9    255738 Hypercholesterolemia,_autosomal_dominant,_3 MedGen:C1863551,OMIM:603776
CFH      3075   Age-related_macular_degeneration_4      MedGen:C1853147,OMIM:610698
MSH2     4436   Lynch_syndrome_1                        MONDO:MONDO:0007356,MedGen:C1333990
MLH1     4292   Lynch_syndrome_2                        MONDO:MONDO:0012249,MedGen:C1833477
EPM2AIP1 80063  - -
SCN5A    6331   Brugada_syndrome_1                      MONDO:MONDO:0011001,MedGen:C1142166
APC      324    Familial_adenomatous_polyposis_1        MONDO:MONDO:0021055,MedGen:C2713442
HFE      3077   Hemochromatosis_type_1                  MONDO:MONDO:0021001,MedGen:C3469186
CFTR     1080   Cystic_fibrosis                         MONDO:MONDO:0009061,MedGen:C0010674
PTEN     5728   PTEN_hamartoma_tumor_syndrome           MONDO:MONDO:0017623,MedGen:C1959582
CYP2C19  1557   Clopidogrel_response                    MedGen:CN077957
KCNQ1    3784   Long_QT_syndrome_1                      MONDO:MONDO:0100316,MedGen:C0035828
BRCA2    675    Breast-ovarian_cancer,_familial,_2      MONDO:MONDO:0012933,MedGen:C2675520
MYH7     4625   Hypertrophic_cardiomyopathy_1           MONDO:MONDO:0008650,MedGen:C3495498
TP53     7157   Li-Fraumeni_syndrome                    MONDO:MONDO:0018875,MedGen:C0085390
BRCA1    672    Hereditary_breast_ovarian_cancer_syndrome MONDO:MONDO:0003582,MedGen:C0677776
LDLR     3949   Hypercholesterolemia,_familial,_1       MONDO:MONDO:0007750,MedGen:C3160718
APOE     348    Alzheimer_disease_2                     MONDO:MONDO:0007089,MedGen:C1863051
DMD      1756   Duchenne_muscular_dystrophy             MONDO:MONDO:0010679,MedGen:C0013264
MT-ND5   4540   Leigh_syndrome                          MONDO:MONDO:0009723,MedGen:C2931891
""".strip().splitlines():
    _sym, _gid, _dn, _db = _line.split()
    GENES[_sym] = (int(_gid), _dn, _db)
DISEASES = {"np": ("not_provided", "MedGen:C3661900"), "ns": ("not_specified", "MedGen:CN169374")}
MC = {"mis": "SO:0001583|missense_variant", "non": "SO:0001587|nonsense",
      "syn": "SO:0001819|synonymous_variant", "fs": "SO:0001589|frameshift_variant",
      "intr": "SO:0001627|intron_variant", "spl": "SO:0001575|splice_donor_variant",
      "utr5": "SO:0001623|5_prime_UTR_variant", "inf": "SO:0001822|inframe_deletion"}

# The ClinVar variant table. A state is "CLNSIG@review-key[@CLNSIGCONF]" (VUS/LP/P/LB/B are
# expanded, CONF becomes the release's conflict term, "-" = no CLNSIG); None = absent from the
# release; "=" = same as old. kind: snv | delN (N bases deleted) | insSEQ.
VARIANTS = []


def V(label, chrom, pos, kind, genes, mc, vid, old, new="=", dis="gene", rs=None, origin="1",
      incl=None):
    VARIANTS.append(dict(label=label, chrom=chrom, pos=pos, kind=kind, genes=genes, mc=mc,
                         vid=vid, states=(old, old if new == "=" else new), dis=dis, rs=rs,
                         origin=origin, incl=incl))


# --- changed between releases (the expected kinds are in EXPECTED below) --------------------
V("UP1", "13", 32332400, "snv", "BRCA2", "mis", 1478231, "VUS@single", "LP@single")
V("UP2", "3", 37025900, "snv", "MLH1", "mis", 1690042, "VUS@single", "LP@single")
V("DOWN", "14", 23415300, "snv", "MYH7", "mis", 42851, "P@single", "VUS@single", rs=1589012345)
V("LB2VUS", "3", 38551200, "snv", "SCN5A", "mis", 201334, "LB@single", "VUS@single")
V("VUS2CONF", "19", 11102700, "snv", "LDLR", "mis", 251980, "VUS@single",
  "CONF@conf@P(1)|VUS(2)", dis="gene|np")
V("CONF2LB", "7", 117509100, "snv", "CFTR", "mis", 53802, "CONF@conf@VUS(1)|LB(3)", "LB@multi",
  dis="ns|gene", rs=1589020117)
V("LP2P", "17", 7675990, "del1", "TP53", "fs", 376650, "LP@single", "P@single")
V("REV1", "17", 43071000, "snv", "BRCA1", "mis", 55412, "VUS@single", "VUS@expert", rs=1589031109)
V("REV2", "19", 11113400, "snv", "LDLR", "mis", 3736, "P@single", "P@multi", rs=1589042871)
V("RENAME", "13", 32340300, "snv", "BRCA2", "mis", 127453, "CONF@conf@LP(1)|VUS(2)", "=",
  dis="gene|np", rs=1589050032)
V("GONE", "7", 117590500, "del2", "CFTR", "fs", 1069785, "LP@single", None)
V("NEW1", "17", 43057100, "snv", "BRCA1", "non", 2733012, None, "P@single")
V("NEW2", "11", 2570700, "insGC", "KCNQ1", "fs", 2741977, None, "VUS@single")
V("NOCLASS", "6", 26093100, "snv", "HFE", "mis", 1332410, "not_provided@noclass", dis="np")
V("NOSINGLE", "19", 44908700, "snv", "APOE", "mis", 440521, "-@nosingle", incl="17864:risk_factor")
# --- unchanged records (special terms first) -------------------------------------------------
V("CFH_ASSOC", "1", 196690107, "snv", "CFH", "mis", 13423, "B|association@multi", rs=1589061244)
V("HFE_LOWPEN", "6", 26091500, "snv", "HFE", "mis", 10233, "Pathogenic,_low_penetrance@multi",
  rs=1589070398)
V("CYP_DRUG", "10", 94781900, "snv", "CYP2C19", "spl", 12769, "drug_response@guideline",
  rs=1589081555)
V("BRCA1_PLP", "17", 43045700, "snv", "BRCA1", "mis", 55601, "Pathogenic/Likely_pathogenic@multi")
V("MLH1_BLB", "3", 36993550, "snv", "MLH1|EPM2AIP1", "utr5", 89654, "Benign/Likely_benign@multi",
  dis="ns")
V("APOE_RISK", "19", 44906000, "snv", "APOE", "mis", 17848, "risk_factor@nocrit")
V("MT_ND5", "MT", 13520, "snv", "MT-ND5", "mis", 9679, "P@multi")
V("MUTYH_B", "1", 45331556, "snv", "MUTYH", "syn", 134567, "B@multi", dis="ns")
V("MUTYH_LP", "1", 45332200, "snv", "MUTYH", "mis", 5293, "LP@single")
V("PCSK9_VUS", "1", 55051215, "snv", "PCSK9", "mis", 297304, "VUS@single")
V("MSH2_LB", "2", 47403400, "snv", "MSH2", "intr", 186002, "LB@single", dis="ns")
V("MSH2_P", "2", 47445600, "del1", "MSH2", "fs", 90890, "P@expert")
V("MLH1_VUS", "3", 37047600, "snv", "MLH1", "mis", 41632, "VUS@nocrit")
V("SCN5A_LB", "3", 38603900, "snv", "SCN5A", "syn", 67805, "LB@single", dis="ns")
V("APC_P", "5", 112838000, "snv", "APC", "non", 822, "P@expert", origin="3")
V("APC_B", "5", 112840100, "snv", "APC", "syn", 41596, "B@multi", dis="ns")
V("CFTR_P", "7", 117540200, "del3", "CFTR", "inf", 7105, "P@multi")
V("CFTR_VUS", "7", 117614700, "snv", "CFTR", "mis", 53959, "VUS@single", dis="gene|np")
V("PTEN_LP", "10", 87933100, "snv", "PTEN", "spl", 231189, "LP@single")
V("KCNQ1_VUS", "11", 2583500, "snv", "KCNQ1", "mis", 190733, "VUS@single")
V("BRCA2_P", "13", 32356500, "del1", "BRCA2", "fs", 51579, "P@expert", rs=1589090761)
V("BRCA2_B", "13", 32379800, "snv", "BRCA2", "mis", 41417, "B@expert")
V("MYH7_LB", "14", 23424100, "snv", "MYH7", "syn", 43010, "LB@multi", dis="ns")
V("TP53_P", "17", 7674220, "snv", "TP53", "mis", 12347, "P@expert", origin="3", rs=1589101983)
V("TP53_LB", "17", 7676100, "snv", "TP53", "mis,intr", 134221, "LB@multi", dis="ns")
V("BRCA1_LB", "17", 43094500, "snv", "BRCA1", "syn", 209553, "LB@single")
V("LDLR_VUS", "19", 11116900, "snv", "LDLR", "mis", 251420, "VUS@single")
V("DMD_P", "X", 31224700, "del4", "DMD", "fs", 94583, "P@single")
V("DMD_B", "X", 32389600, "snv", "DMD", "syn", 95011, "B@multi", dis="ns")

EXPECTED = {  # label: expected change kind (README table, in this order)
    "UP1": "upgrade VUS->LP (high)", "UP2": "upgrade VUS->LP (high)",
    "DOWN": "downgrade P->VUS (high)", "LB2VUS": "class changed LB->VUS (medium)",
    "VUS2CONF": "conflict appeared", "CONF2LB": "conflict resolved (->LB)",
    "LP2P": "reclassified within tier LP->P (low)",
    "REV1": "review status only, 1->3 stars", "REV2": "review status only, 1->2 stars",
    "RENAME": "NO CHANGE (renamed conflict terms only)",
    "GONE": "gone (absent in new; not benign)",
    "NEW1": "new (absent in old), P", "NEW2": "new (absent in old), VUS",
    "NOCLASS": "NO CHANGE (renamed review status only)",
    "NOSINGLE": "NO CHANGE (renamed review status only; no CLNSIG)",
}

# Patient and trio rows: (site, GTs, form="exact", FILTER="PASS"). A site is a ClinVar label or
# a non-ClinVar (chrom, pos, kind). Forms: second-alt (the ClinVar allele is ALT 2) and
# prefix-pad / suffix-pad (one extra shared base before / after; matches after trimming).
PATIENT = [
    ("UP1", ("0/1",)), ("DOWN", ("0/1",)), ("RENAME", ("0/1",)),
    ("NEW1", ("1/2",), "second-alt"), ("GONE", ("0/1",)), ("MT_ND5", ("1",)),
    ("UP2", ("0/0",)), ("LP2P", ("./.",)), ("REV1", ("0/1",), "exact", "LowQual"),
    ("HFE_LOWPEN", ("1/1",)), ("CYP_DRUG", ("0/1",)), ("CFH_ASSOC", ("1/1",)),
    ("MLH1_BLB", ("0/1",)),
] + [((c, p, k), (gt,)) for c, p, k, gt in [
    ("1", 1014228, "snv", "0/1"), ("2", 21012500, "snv", "1/1"), ("3", 37032000, "del1", "0/1"),
    ("4", 1806100, "snv", "0/1"), ("5", 112839000, "insT", "0/1"), ("6", 31356400, "snv", "1/1"),
    ("7", 117530000, "snv", "0/1"), ("8", 19956000, "snv", "0/1"), ("9", 133256000, "snv", "1/1"),
    ("11", 2600000, "snv", "0/1"), ("12", 6345000, "del2", "0/1"), ("13", 32338000, "snv", "0/1"),
    ("15", 48420000, "snv", "1/1"), ("17", 43080000, "snv", "0/1"), ("19", 11105000, "snv", "0/1"),
    ("22", 29100000, "snv", "0/1"), ("X", 31500000, "snv", "0/1")]]
TRIO_SAMPLES = ["CHILD01", "MOTHER01", "FATHER01"]
TRIO = [
    ("UP2", ("0/1", "0/0", "0/0")), ("LB2VUS", ("0|1", "0|0", "1|0")),
    ("VUS2CONF", ("0/1", "0/1", "0/0")), ("CONF2LB", ("1/1", "0/1", "0/1")),
    ("REV2", ("./1", "0/1", "./.")), ("LP2P", ("0/1", "0/0", "0/1"), "prefix-pad"),
    ("UP1", ("0/0", "0/1", "0/0")), ("DOWN", ("0/0", "./.", "0/1"), "suffix-pad"),
    ("HFE_LOWPEN", ("1/1", "0/1", "0/1")), ("APC_B", ("0/1", "1/1", "0/0")),
] + [((c, p, k), tuple(gts)) for c, p, k, *gts in [
    ("1", 2300000, "snv", "0/1", "0/1", "0/0"), ("2", 166000000, "snv", "1/1", "1/1", "0/1"),
    ("4", 1806100, "snv", "0|1", "0|0", "1|1"), ("5", 140000000, "snv", "./.", "0/1", "0/1"),
    ("8", 19956000, "snv", "0/1", "0/0", "0/1"), ("10", 87900000, "del1", "0/1", "0/1", "0/0"),
    ("12", 6345000, "del2", "1/1", "0/1", "1/1"), ("16", 2088000, "snv", "0/0", "0/1", "0/0"),
    ("20", 31600000, "snv", "0/1", "0/0", "0/1"), ("X", 31500000, "snv", "0/1", "0/1", "0/0")]]

# Header definitions copied verbatim from real ClinVar VCFs (germline wording used since 2023-10).
CLINVAR_INFO_HEADER = """\
##INFO=<ID=AF_ESP,Number=1,Type=Float,Description="allele frequencies from GO-ESP">
##INFO=<ID=AF_EXAC,Number=1,Type=Float,Description="allele frequencies from ExAC">
##INFO=<ID=AF_TGP,Number=1,Type=Float,Description="allele frequencies from TGP">
##INFO=<ID=ALLELEID,Number=1,Type=Integer,Description="the ClinVar Allele ID">
##INFO=<ID=CLNDN,Number=.,Type=String,Description="ClinVar's preferred disease name for the concept specified by disease identifiers in CLNDISDB">
##INFO=<ID=CLNDNINCL,Number=.,Type=String,Description="For included Variant : ClinVar's preferred disease name for the concept specified by disease identifiers in CLNDISDB">
##INFO=<ID=CLNDISDB,Number=.,Type=String,Description="Tag-value pairs of disease database name and identifier submitted for germline classifications, e.g. OMIM:NNNNNN">
##INFO=<ID=CLNDISDBINCL,Number=.,Type=String,Description="For included Variant: Tag-value pairs of disease database name and identifier for germline classifications, e.g. OMIM:NNNNNN">
##INFO=<ID=CLNHGVS,Number=.,Type=String,Description="Top-level (primary assembly, alt, or patch) HGVS expression.">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status of germline classification for the Variation ID">
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Aggregate germline classification for this single variant; multiple values are separated by a vertical bar">
##INFO=<ID=CLNSIGCONF,Number=.,Type=String,Description="Conflicting germline classification for this single variant; multiple values are separated by a vertical bar">
##INFO=<ID=CLNSIGINCL,Number=.,Type=String,Description="Germline classification for a haplotype or genotype that includes this variant. Reported as pairs of VariationID:classification; multiple values are separated by a vertical bar">
##INFO=<ID=CLNVC,Number=1,Type=String,Description="Variant type">
##INFO=<ID=CLNVCSO,Number=1,Type=String,Description="Sequence Ontology id for variant type">
##INFO=<ID=CLNVI,Number=.,Type=String,Description="the variant's clinical sources reported as tag-value pairs of database and variant identifier">
##INFO=<ID=DBVARID,Number=.,Type=String,Description="nsv accessions from dbVar for the variant">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant reported as gene symbol:gene id. The gene symbol and id are delimited by a colon (:) and each pair is delimited by a vertical bar (|)">
##INFO=<ID=MC,Number=.,Type=String,Description="comma separated list of molecular consequence in the form of Sequence Ontology ID|molecular_consequence">
##INFO=<ID=ORIGIN,Number=.,Type=String,Description="Allele origin. One or more of the following values may be added: 0 - unknown; 1 - germline; 2 - somatic; 4 - inherited; 8 - paternal; 16 - maternal; 32 - de-novo; 64 - biparental; 128 - uniparental; 256 - not-tested; 512 - tested-inconclusive; 1073741824 - other">
##INFO=<ID=RS,Number=.,Type=String,Description="dbSNP ID (i.e. rs number)">
"""  # noqa: E501

TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
OTHER = {"A": "C", "G": "T", "C": "A", "T": "G"}  # a third base, differs from both above


def base(chrom, pos):
    """Deterministic pseudo-reference base (not GRCh38 sequence)."""
    return "ACGT"[hashlib.sha256(f"{chrom}:{pos}".encode()).digest()[0] % 4]


def alleles(chrom, pos, kind):
    """(pos, REF, ALT) in left-aligned VCF form; pos moves right until the indel is canonical."""
    if kind == "snv":
        return pos, base(chrom, pos), TRANSITION[base(chrom, pos)]
    if kind.startswith("del"):
        n = int(kind[3:])
        while base(chrom, pos) == base(chrom, pos + n):  # could shift left: not left-aligned
            pos += 1
        ref = "".join(base(chrom, p) for p in range(pos, pos + n + 1))
        return pos, ref, ref[0]
    ins = kind[3:]
    while base(chrom, pos) == ins[-1]:
        pos += 1
    return pos, base(chrom, pos), base(chrom, pos) + ins


def hgvs(chrom, pos, ref, alt):
    acc = REFSEQ[chrom]
    if len(ref) == len(alt) == 1:
        return f"{acc}:{'m' if chrom == 'MT' else 'g'}.{pos}{ref}>{alt}"
    if len(alt) == 1:
        span = f"{pos + 1}" if len(ref) == 2 else f"{pos + 1}_{pos + len(ref) - 1}"
        return f"{acc}:g.{span}del"
    return f"{acc}:g.{pos}_{pos + 1}ins{alt[1:]}"


def expand(term):
    """Expand VUS/LP/P/LB/B abbreviations in a '|'-joined CLNSIG or CLNSIGCONF value."""
    return re.sub(r"[A-Za-z_]+", lambda m: ABBR.get(m[0], m[0]), term)


def parse_state(state, release):
    """'SIG@rev[@conf]' -> (CLNSIG or None, CLNREVSTAT, CLNSIGCONF or None, stars)."""
    sig, rev, *conf = state.split("@")
    sig = CONFLICT[release] if sig == "CONF" else None if sig == "-" else expand(sig)
    return sig, REVSTAT[rev][release], (expand(conf[0]) if conf else None), REVSTAT[rev][2]


for _v in VARIANTS:
    _v["pos"], _v["ref"], _v["alt"] = alleles(_v["chrom"], _v["pos"], _v["kind"])
BY_LABEL = {v["label"]: v for v in VARIANTS}
assert len(BY_LABEL) == len(VARIANTS) and set(EXPECTED) <= set(BY_LABEL)


def clinvar_info(v, release):
    sig, rev, conf, _ = parse_state(v["states"][release], release)
    genes = v["genes"].split("|")
    gene_dis = GENES[genes[0]][1:]
    dis = [gene_dis if d == "gene" else DISEASES[d] for d in v["dis"].split("|")]
    snv, deletion = len(v["ref"]) == len(v["alt"]), len(v["alt"]) == 1
    vc, vcso = (("single_nucleotide_variant", "SO:0001483") if snv else
                ("Deletion", "SO:0000159") if deletion else ("Insertion", "SO:0000667"))
    f = {"ALLELEID": v["vid"] + 15532}
    if v["incl"]:  # only part of a haplotype: no CLNSIG, only the "included" fields
        f.update(CLNDNINCL=gene_dis[0], CLNDISDBINCL=gene_dis[1], CLNSIGINCL=v["incl"])
    else:
        f.update(CLNDN="|".join(d[0] for d in dis), CLNDISDB="|".join(d[1] for d in dis))
    f.update(CLNHGVS=hgvs(v["chrom"], v["pos"], v["ref"], v["alt"]), CLNREVSTAT=rev,
             CLNSIG=sig, CLNSIGCONF=conf, CLNVC=vc, CLNVCSO=vcso,
             GENEINFO="|".join(f"{g}:{GENES[g][0]}" for g in genes),
             MC=",".join(MC[m] for m in v["mc"].split(",")), ORIGIN=v["origin"], RS=v["rs"])
    return ";".join(f"{k}={val}" for k, val in sorted(f.items()) if val is not None)


def sort_key(chrom, pos):
    c = chrom.removeprefix("chr")
    return ORDER["MT" if c == "M" else c], pos


def clinvar_vcf(release):
    lines = ["##fileformat=VCFv4.1", f"##fileDate={RELEASES[release]}", "##source=ClinVar",
             "##reference=GRCh38", '##ID=<Description="ClinVar Variation ID">']
    lines += CLINVAR_INFO_HEADER.splitlines()
    lines += [f"##contig=<ID={c},length={n}>" for c, n in CONTIGS]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    for v in sorted(VARIANTS, key=lambda v: sort_key(v["chrom"], v["pos"])):
        if v["states"][release] is not None:
            lines.append("\t".join(map(str, [v["chrom"], v["pos"], v["vid"], v["ref"], v["alt"],
                                             ".", ".", clinvar_info(v, release)])))
    return "\n".join(lines) + "\n"


def site_record(site, form, chr_prefix):
    """(chrom, pos, REF, ALT list, index of the ClinVar ALT or None) for a sample-VCF row."""
    if isinstance(site, str):
        v = BY_LABEL[site]
        chrom, pos, ref, alt, idx = v["chrom"], v["pos"], v["ref"], [v["alt"]], 1
    else:
        chrom, (pos, ref, alt1) = site[0], alleles(*site)
        alt, idx = [alt1], None
        assert all(v["chrom"] != chrom or abs(v["pos"] - pos) > 10 for v in VARIANTS), site
    if form == "second-alt":
        alt, idx = [OTHER[ref], alt[0]], 2
    elif form == "prefix-pad":
        pad = base(chrom, pos - 1)
        pos, ref, alt = pos - 1, pad + ref, [pad + alt[0]]
    elif form == "suffix-pad":
        pad = base(chrom, pos + len(ref))
        ref, alt = ref + pad, [alt[0] + pad]
    if chr_prefix:
        chrom = "chrM" if chrom == "MT" else "chr" + chrom
    return chrom, pos, ref, alt, idx


CARRIERS = {}  # label -> ["SAMPLE `GT` (notes)"], filled by sample_vcf() for the README


def sample_vcf(rows, samples, chr_prefix):
    """Render a sample VCF; rows are (site, GTs, form="exact", FILTER="PASS")."""
    contigs = [(("chrM" if c == "MT" else "chr" + c) if chr_prefix else c, n) for c, n in CONTIGS]
    lines = ["##fileformat=VCFv4.2", '##FILTER=<ID=PASS,Description="All filters passed">',
             '##FILTER=<ID=LowQual,Description="Low quality">', "##reference=GRCh38"]
    lines += [f"##contig=<ID={c},length={n}>" for c, n in contigs]
    lines += [f'##FORMAT=<ID={i},Number=1,Type={t},Description="{d}">' for i, t, d in [
        ("GT", "String", "Genotype"), ("DP", "Integer", "Read depth"),
        ("GQ", "Integer", "Genotype quality")]]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                            "FORMAT", *samples]))
    records = []
    for site, gts, form, filt in (tuple(r) + ("exact", "PASS")[len(r) - 2:] for r in rows):
        chrom, pos, ref, alt, idx = site_record(site, form, chr_prefix)
        fields = []
        for i, (sample, gt) in enumerate(zip(samples, gts, strict=True)):
            dp = 18 + (pos + 11 * i) % 37
            no_call = set(gt) <= set("./|")
            fields.append(f"{gt}:.:." if no_call else f"{gt}:{dp}:{min(99, 30 + 2 * dp)}")
            if isinstance(site, str):  # who has which ClinVar allele, for the README
                notes = [form] * (form != "exact") + [f"FILTER={filt}"] * (filt != "PASS")
                text = f"{sample} `{gt}`" + (f" ({', '.join(notes)})" if notes else "")
                carried = str(idx) in gt.replace("|", "/").split("/")
                CARRIERS.setdefault(site, []).append(text if carried else text + " not carried")
        qual = 12 if filt != "PASS" else 40 + pos % 900
        records.append((sort_key(chrom, pos), "\t".join(map(str, [
            chrom, pos, ".", ref, ",".join(alt), qual, filt, ".", "GT:DP:GQ", *fields]))))
    return "\n".join(lines + [r for _, r in sorted(records)]) + "\n"


README = """# Sample VCFs

Small synthetic files for tests, docs and demos, **generated** by `make_samples.py` (edit the
script, not these files; run `.venv/bin/python sample_vcfs/make_samples.py`). Byte-for-byte
reproducible. All values are invented; REF bases come from a pseudo-reference (a hash of
contig:position), not GRCh38, so never `bcftools norm -f` them against a real FASTA
(`bcftools norm -m -any` without a reference is fine).

- `clinvar_GRCh38_{old}.vcf`: ClinVar-format release, {n_old} records, GRCh38, contigs
  `1`..`22`, `X`, `Y`, `MT`, one ALT per record; **pre-rename** vocabulary
  (`Conflicting_interpretations_of_pathogenicity`,
  `criteria_provided,_conflicting_interpretations`, `no_assertion_provided`,
  `no_interpretation_for_the_single_variant`).
- `clinvar_GRCh38_{new}.vcf`: the next release, {n_new} records, **post-rename** vocabulary
  (`Conflicting_classifications_of_pathogenicity`,
  `criteria_provided,_conflicting_classifications`, `no_classification_provided`,
  `no_classification_for_the_single_variant`).
- `patient_single.vcf.gz` (+ `.tbi`): sample `PATIENT01`, GRCh38, bgzip + tabix, contigs
  **with** `chr` (`chrM`), FORMAT GT:DP:GQ, {n_pat} records, {n_pat_cv} at ClinVar sites.
- `trio.vcf`: samples `CHILD01`, `MOTHER01`, `FATHER01`, GRCh38, contigs **without** `chr`,
  {n_trio} records, {n_trio_cv} at ClinVar sites.

Matching needs `chr1`/`1` and `chrM`/`MT` equivalence, splitting multi-allelic records and
trimming shared leading/trailing bases; every form here matches after trimming alone (no FASTA).
A sample carries the ClinVar allele when its allele index is in GT: `0/0` and `./.` do not;
the half-call `./1` does (one called allele is ALT; a tool may flag it as partial). The
`FILTER=LowQual` record carries the allele by GT; reporting it flagged or dropping it is a
tool policy that tests should pin.

Representation forms: `second-alt` = multi-allelic record whose 2nd ALT is the ClinVar allele
(GT `1/2`; matches only after splitting); `prefix-pad` = the TP53 deletion written from one
base earlier with a shared leading base; `suffix-pad` = the MYH7 SNV written as a 2-base
REF/ALT with a shared trailing base. PATIENT01's `chrM` genotype is haploid `1`. No
right-shifted (not left-aligned) indel is included: matching one needs the real reference.

## Expected changes, {old} -> {new}

Rows marked NO CHANGE differ only by renamed vocabulary: a diff must report none of them.
Every record not in this table is identical in both releases.

| variant | gene | label | old class / review | new class / review | expected change kind \
| samples (GT) |
|---|---|---|---|---|---|---|
"""


def describe(v, release):
    if v["states"][release] is None:
        return "(absent)"
    sig, rev, conf, stars = parse_state(v["states"][release], release)
    conf = f" `{conf}`" if conf else ""
    return f"`{sig or '(no CLNSIG)'}`{conf}<br>`{rev}` ({stars}★)"


def md_row(*cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |\n"


def readme(old_txt, new_txt, pat_txt, trio_txt):
    def count(text):
        return sum(1 for line in text.splitlines() if not line.startswith("#"))

    def cols(v):
        key = f"`{v['chrom']}:{v['pos']} {v['ref']}>{v['alt']}`"
        return key, v["genes"], v["label"]

    def who(v):
        return "<br>".join(CARRIERS.get(v["label"], [])) or "-"

    out = README.format(old=RELEASES[OLD], new=RELEASES[NEW], n_old=count(old_txt),
                        n_new=count(new_txt), n_pat=count(pat_txt), n_trio=count(trio_txt),
                        n_pat_cv=sum(isinstance(r[0], str) for r in PATIENT),
                        n_trio_cv=sum(isinstance(r[0], str) for r in TRIO))
    for label, kind in EXPECTED.items():
        v = BY_LABEL[label]
        out += md_row(*cols(v), describe(v, OLD), describe(v, NEW), kind, who(v))
    out += ("\n## Unchanged records (special terms first)\n\n| variant | gene | label "
            "| class / review (both releases) | samples (GT) |\n|---|---|---|---|---|\n")
    for v in VARIANTS:
        if v["label"] not in EXPECTED:
            out += md_row(*cols(v), describe(v, NEW), who(v))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output directory (default: this script's directory)")
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for v in VARIANTS:
        assert v["pos"] >= 1 and v["pos"] + len(v["ref"]) <= LENGTH[v["chrom"]], v
    old_txt, new_txt = clinvar_vcf(OLD), clinvar_vcf(NEW)
    pat_txt = sample_vcf(PATIENT, ["PATIENT01"], chr_prefix=True)
    trio_txt = sample_vcf(TRIO, TRIO_SAMPLES, chr_prefix=False)
    files = {f"clinvar_GRCh38_{RELEASES[OLD]}.vcf": old_txt,
             f"clinvar_GRCh38_{RELEASES[NEW]}.vcf": new_txt, "trio.vcf": trio_txt,
             "README.md": readme(old_txt, new_txt, pat_txt, trio_txt)}
    for name, text in files.items():
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out / name)
    import pysam  # only for BGZF compression and the tabix index

    gz = out / "patient_single.vcf.gz"
    with pysam.BGZFile(str(gz), "wb") as fh:
        fh.write(pat_txt.encode())
    pysam.tabix_index(str(gz), preset="vcf", force=True)
    print(f"wrote {len(files) + 2} files to {out}")


if __name__ == "__main__":
    main()
