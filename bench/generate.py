#!/usr/bin/env python3
"""Deterministic synthetic inputs for the varreinterp benchmarks.

Writes into a work dir (default .bench/ at the repo root):
  clinvar_A.vcf.gz(+.tbi)  ClinVar-format GRCh38 release 2024-01-07, 3,000,000 records
  clinvar_B.vcf.gz(+.tbi)  the "next release" 2024-02-04: ~2% changed, 1% removed, 2% added
  wgs.vcf.gz(+.tbi)        sample WGS01, 5,000,000 records, chr-prefixed, ~5% at ClinVar sites
  exome.vcf.gz(+.tbi)      same style, 100,000 records
  cohort/P0001.vcf.gz ...  1,000 exomes, ~40,000 carried alleles each from a shared pool
Each product has a JSON stamp (.stamp.<name>.json) with its parameters; a product whose files exist
and whose stamp matches is skipped, so re-runs are cheap. Everything derives from a fixed seed.
REF bases come from a hash of (contig, position), so all files agree on the "reference".
"""

import argparse
import functools
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".bench"
SEED = 20240107
VERSION = 1  # bump whenever a generator's output changes
SIZES = dict(
    clinvar=3_000_000, wgs=5_000_000, exome=100_000, cohort=1000, per_patient=40_000, pool=60_000,
    joint=10_000, cohort_bulk=10_000,
)
BULK_PER_FILE = 1000
JOINT_SAMPLES = (100, 1000, 2504)
CHUNK = 250_000

CHROMS = [str(i) for i in range(1, 23)] + ["X", "Y", "MT"]
UCSC = ["chr" + c for c in CHROMS[:-1]] + ["chrM"]
# fmt: off
LENGTHS = np.array([
    248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973, 145138636,
    138394717, 133797422, 135086622, 133275309, 114364328, 107043718, 101991189, 90338345,
    83257441, 80373285, 58617616, 64444167, 46709983, 50818468, 156040895, 57227415, 16569])
REFSEQ = [
    "NC_000001.11", "NC_000002.12", "NC_000003.12", "NC_000004.12", "NC_000005.10", "NC_000006.12",
    "NC_000007.14", "NC_000008.11", "NC_000009.12", "NC_000010.11", "NC_000011.10", "NC_000012.12",
    "NC_000013.11", "NC_000014.9", "NC_000015.10", "NC_000016.10", "NC_000017.11", "NC_000018.10",
    "NC_000019.10", "NC_000020.11", "NC_000021.9", "NC_000022.11", "NC_000023.11", "NC_000024.10",
    "NC_012920.1"]
# fmt: on

# ---- ClinVar vocabulary (post-2024 terms) ------------------------------------------------------
REVSTATS = [
    "criteria_provided,_single_submitter",
    "criteria_provided,_multiple_submitters,_no_conflicts",
    "criteria_provided,_conflicting_classifications",
    "no_assertion_criteria_provided",
    "reviewed_by_expert_panel",
    "practice_guideline",
    "no_classification_provided",
]
S, M, C, N, E, G, NC = range(7)
# (CLNSIG, share, {review status: share})
CLASSES = [
    ("Uncertain_significance", 0.45, {S: 0.80, M: 0.13, N: 0.065, E: 0.005}),
    ("Likely_benign", 0.30, {S: 0.85, M: 0.13, N: 0.02}),
    ("Benign", 0.08, {S: 0.40, M: 0.50, N: 0.07, E: 0.03}),
    ("Benign/Likely_benign", 0.04, {M: 0.97, E: 0.03}),
    ("Conflicting_classifications_of_pathogenicity", 0.05, {C: 1}),
    ("Pathogenic", 0.04, {S: 0.45, M: 0.30, N: 0.15, E: 0.08, G: 0.02}),
    ("Likely_pathogenic", 0.02, {S: 0.75, M: 0.15, N: 0.08, E: 0.02}),
    ("Pathogenic/Likely_pathogenic", 0.01, {M: 0.90, E: 0.10}),
    ("not_provided", 0.004, {NC: 1}),
    ("drug_response", 0.0025, {N: 0.5, S: 0.3, E: 0.2}),
    ("risk_factor", 0.002, {N: 0.8, S: 0.2}),
    ("Benign|association", 0.0015, {S: 1}),
]
CONFLICTING = 4
CLS_P = np.array([c[1] for c in CLASSES]) / sum(c[1] for c in CLASSES)
REV_P = np.zeros((len(CLASSES), len(REVSTATS)))
for _i, _c in enumerate(CLASSES):
    for _r, _p in _c[2].items():
        REV_P[_i, _r] = _p
UPGRADE = np.array([M, E, C, S, M, E, N])  # review-status-only change in release B
DISEASES = [
    ("not_provided", "MedGen:C3661900"),
    ("not_specified", "MedGen:CN169374"),
    ("Inborn_genetic_diseases", "MeSH:D030342,MedGen:C0950123"),
    ("not_provided|Inborn_genetic_diseases", "MedGen:C3661900|MeSH:D030342,MedGen:C0950123"),
    ("Hereditary_cancer-predisposing_syndrome", "MONDO:MONDO:0015356,MedGen:C0027672"),
    ("Cardiovascular_phenotype", "MedGen:CN230736"),
    ("not_specified|not_provided", "MedGen:CN169374|MedGen:C3661900"),
    (
        "Hereditary_breast_ovarian_cancer_syndrome",
        "MONDO:MONDO:0003582,MeSH:D061325,MedGen:C0677776",
    ),
    ("Lynch_syndrome", "MONDO:MONDO:0005835,MeSH:D003123,MedGen:C1333990,Orphanet:144"),
]
# fmt: off
DIS_P = [0.35, 0.15, 0.14, 0.08, 0.05, 0.04, 0.03, 0.01, 0.01]  # rest: "<GENE>-related_disorder"
VC = [("single_nucleotide_variant", "SO:0001483"), ("Deletion", "SO:0000159"),
      ("Insertion", "SO:0000667"), ("Duplication", "SO:1000035"), ("Indel", "SO:1000032")]
MC_SNV = (["SO:0001583|missense_variant", "SO:0001819|synonymous_variant",
           "SO:0001627|intron_variant", "SO:0001587|nonsense", "SO:0001575|splice_donor_variant",
           "SO:0001574|splice_acceptor_variant", "SO:0001623|5_prime_UTR_variant",
           "SO:0001624|3_prime_UTR_variant",
           "SO:0001583|missense_variant,SO:0001627|intron_variant", ""],
          [0.48, 0.2, 0.14, 0.04, 0.02, 0.02, 0.02, 0.02, 0.03, 0.03])
MC_INDEL = (["SO:0001589|frameshift_variant", "SO:0001822|inframe_deletion",
             "SO:0001821|inframe_insertion", "SO:0001627|intron_variant",
             "SO:0001575|splice_donor_variant", "SO:0001624|3_prime_UTR_variant", ""],
            [0.45, 0.08, 0.05, 0.3, 0.04, 0.04, 0.04])
# fmt: on
ORIGINS = (["1", "3", "0", "5", "33"], [0.92, 0.03, 0.02, 0.02, 0.01])


def rng(*k):
    return np.random.default_rng([SEED, *k])


def strs(values):
    return pa.array(values, pa.string())


def join(*parts):
    """Element-wise concatenation of string arrays and str literals (pyarrow, no Python loop)."""
    return pc.binary_join_element_wise(
        *[pa.scalar(p) if isinstance(p, str) else p for p in parts], ""
    )


def itoa(a):
    return pc.cast(pa.array(a), pa.string())


def pick(r, n, p):
    return r.choice(len(p), n, p=np.asarray(p) / np.sum(p))


# ---- variant keys ------------------------------------------------------------------------------
# A variant is a uint64: contig(5 bits) | pos(28) | kind(2) | len(5) | seed(24). kind 0 SNV
# (seed = alt 0..2), 1 deletion of len bases, 2 insertion of len bases (seq from seed), 3 delins
# (len = 8*(r-2)+a, ALT from seed). Distinct keys decode to distinct (contig, pos, REF, ALT);
# sorting keys sorts the VCF.
def encode(ci, pos, kind, ln, seed):
    u = np.uint64
    return (
        (ci.astype(u) << u(59))
        | (pos.astype(u) << u(31))
        | (kind.astype(u) << u(29))
        | (ln.astype(u) << u(24))
        | seed.astype(u)
    )


def decode(k):
    u = np.uint64
    return (
        (k >> u(59)).astype(np.int64),
        ((k >> u(31)) & u((1 << 28) - 1)).astype(np.int64),
        ((k >> u(29)) & u(3)).astype(np.int64),
        ((k >> u(24)) & u(31)).astype(np.int64),
        (k & u((1 << 24) - 1)).astype(np.int64),
    )


def refbase(ci, pos):
    """Pseudo-reference base code (0..3 = ACGT) at (contig index, position): a splitmix64 hash."""
    u = np.uint64
    with np.errstate(over="ignore"):
        h = ci.astype(u) * u(0x9E3779B97F4A7C15) + pos.astype(u) * u(0xBF58476D1CE4E5B9)
        h ^= h >> u(31)
        h *= u(0x94D049BB133111EB)
        h ^= h >> u(29)
    return (h & u(3)).astype(np.int64)


def seq_codes(seed, nb):
    return (seed[:, None] >> (2 * np.arange(nb))) & 3


def random_keys(r, ci, pos, indel=0.10):
    n = len(ci)
    kind = np.where(r.random(n) < indel, pick(r, n, [0, 0.55, 0.35, 0.10]), 0)
    ln = np.zeros(n, np.int64)
    seed = r.integers(0, 3, n)
    d, i, x = kind == 1, kind == 2, kind == 3
    ln[d] = np.minimum(r.geometric(0.45, d.sum()), 20)
    k = np.minimum(r.geometric(0.45, i.sum()), 12)
    ln[i], seed[i] = k, r.integers(0, 1 << 24, i.sum()) & ((1 << (2 * k)) - 1)
    # delins: REF r=2..5 bases, ALT a=1..7 bases (a != r), ALT[0] != REF[0] and ALT[-1] != REF[-1]
    m = x.sum()
    rl, al = r.integers(2, 6, m), r.integers(1, 7, m)
    al[al >= rl] += 1
    codes = seq_codes(r.integers(0, 1 << 24, m), 12)
    rows = np.arange(m)
    r0, rl_b = refbase(ci[x], pos[x]), refbase(ci[x], pos[x] + rl - 1)
    for _ in range(4):
        bad0 = (codes[:, 0] == r0) | ((al == 1) & (codes[:, 0] == rl_b))
        codes[bad0, 0] = (codes[bad0, 0] + 1) & 3
        badl = (al > 1) & (codes[rows, al - 1] == rl_b)
        codes[rows[badl], al[badl] - 1] = (codes[rows[badl], al[badl] - 1] + 1) & 3
    codes[np.arange(12)[None, :] >= al[:, None]] = 0
    ln[x], seed[x] = 8 * (rl - 2) + al, (codes << (2 * np.arange(12))).sum(1)
    return encode(ci, pos, kind, ln, seed)


BASE_BYTES = np.frombuffer(b"ACGT", np.uint8)
BASES = np.array(list("ACGT"), dtype=object)


def _rows(codes, lens):
    b = np.ascontiguousarray(BASE_BYTES[codes]).view(f"S{codes.shape[1]}").ravel()
    return [s[:n].decode() for s, n in zip(b, lens, strict=True)]


def alleles(keys):
    """Decode keys -> (contig index, pos, REF, ALT, kind)."""
    ci, pos, kind, ln, seed = decode(keys)
    rb = refbase(ci, pos)
    ref, alt = BASES[rb], BASES[(rb + 1 + seed % 3) & 3]
    for kd in (1, 2, 3):
        ix = np.nonzero(kind == kd)[0]
        if not len(ix):
            continue
        c, p, L, sd = ci[ix], pos[ix], ln[ix], seed[ix]
        span = refbase(c[:, None], p[:, None] + np.arange(22))
        if kd == 1:
            ref[ix], alt[ix] = _rows(span, L + 1), BASES[span[:, 0]]
        elif kd == 2:
            ins = _rows(seq_codes(sd, 12), L)
            alt[ix] = [a + s for a, s in zip(ref[ix], ins, strict=True)]
        else:
            rl, al = L // 8 + 2, L % 8
            ref[ix], alt[ix] = _rows(span, rl), _rows(seq_codes(sd, 12), al)
    return ci, pos, ref, alt, kind


def hgvs_indel(ci, pos, ref, alt, kind):
    out = []
    for c, p, rf, al, kd in zip(ci, pos, ref, alt, kind, strict=True):
        acc = REFSEQ[c]
        if kd == 1:
            k = len(rf) - 1
            out.append(f"{acc}:g.{p + 1}del" if k == 1 else f"{acc}:g.{p + 1}_{p + k}del")
        elif kd == 2:
            out.append(f"{acc}:g.{p}_{p + 1}ins{al[1:]}")
        else:
            out.append(f"{acc}:g.{p}_{p + len(rf) - 1}delins{al}")
    return out


def uniform_sites(r, n):
    ci = r.choice(len(CHROMS), n, p=LENGTHS / LENGTHS.sum())
    return ci, 1 + (r.random(n) * (LENGTHS[ci] - 30)).astype(np.int64)


def genes():
    """~19,000 synthetic genes: contig, start, length, record weight."""
    r = rng(1)
    n = 19_000
    ci = np.sort(r.choice(len(CHROMS) - 1, n, p=LENGTHS[:-1] / LENGTHS[:-1].sum()))
    ci = np.concatenate([ci, np.full(13, 24)])
    ln = np.clip(r.lognormal(np.log(20_000), 1.0, len(ci)), 1_000, 1_500_000).astype(np.int64)
    ln[-13:] = r.integers(200, 1500, 13)
    start = 1 + (r.random(len(ci)) * (LENGTHS[ci] - ln - 30)).astype(np.int64)
    return ci, start, ln, r.lognormal(0, 1.5, len(ci))


def gene_sites(r, n, weighted=True):
    gci, gstart, gln, w = genes()
    g = r.choice(len(gci), n, p=w / w.sum()) if weighted else r.integers(0, len(gci), n)
    return g, gci[g], gstart[g] + (r.random(n) * gln[g]).astype(np.int64)


def uniq(a):
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if len(a) else a


def isin(a, sorted_b):
    i = np.minimum(np.searchsorted(sorted_b, a), max(len(sorted_b) - 1, 0))
    return (sorted_b[i] == a) if len(sorted_b) else np.zeros(len(a), bool)


def unique_keys(make, n):
    """Call make(m) -> keys until n distinct keys exist; return n of them, sorted."""
    keys, m = np.empty(0, np.uint64), n
    while len(keys) < n:
        keys = uniq(np.concatenate([keys, make(int(m * 1.05) + 10)]))
        m = n - len(keys)
    return np.sort(rng(99, n).choice(keys, n, replace=False)) if len(keys) > n else keys


# ---- ClinVar ----------------------------------------------------------------------------------
_CLINVAR = {}


def clinvar_table(n):
    """Union of releases A and B: keys, gene and per-record attributes (no strings). Cached."""
    if n in _CLINVAR:
        return _CLINVAR[n]
    r = rng(2)
    n_add = round(0.02 * n)

    def make(m):
        g, ci, pos = gene_sites(r, m)
        return random_keys(r, ci, pos)

    keys = unique_keys(make, n + n_add)
    t = dict(keys=keys)
    nu = len(keys)
    t["added"] = np.zeros(nu, bool)
    t["added"][r.choice(nu, n_add, replace=False)] = True
    a_rows = np.nonzero(~t["added"])[0]
    t["removed"] = np.zeros(nu, bool)
    t["removed"][r.choice(a_rows, round(0.01 * n), replace=False)] = True
    # IDs: A records get a shuffled range, records new in B get higher ones
    t["varid"] = np.empty(nu, np.int64)
    t["varid"][a_rows] = 10_000 + r.permutation(len(a_rows))
    t["varid"][t["added"]] = 10_000 + len(a_rows) + np.arange(n_add)
    t["alleleid"] = t["varid"] + 15_000 + r.integers(0, 3, nu)
    ci, pos, kind, _, _ = decode(keys)
    gci, gstart, gln, _ = genes()
    # nearest gene on the same contig (records were drawn inside genes)
    order = np.lexsort((gstart, gci))
    gk = gci[order] * (1 << 32) + gstart[order]
    t["gene"] = order[
        np.clip(np.searchsorted(gk, ci * (1 << 32) + pos, "right") - 1, 0, len(gci) - 1)
    ]
    t["gene2"] = np.where(r.random(nu) < 0.03, (t["gene"] + 1) % len(gci), -1)
    cls = pick(r, nu, CLS_P)
    rev = (r.random(nu)[:, None] > np.cumsum(REV_P, 1)[cls]).sum(1)
    t["cls_A"], t["rev_A"] = cls, np.minimum(rev, len(REVSTATS) - 1)
    # release B: 2% of the shared records change class and/or review status
    shared = np.nonzero(~t["added"] & ~t["removed"])[0]
    ch = r.choice(shared, round(0.02 * n), replace=False)
    cls_b, rev_b = t["cls_A"].copy(), t["rev_A"].copy()
    rev_only = r.random(len(ch)) < 0.4
    up = UPGRADE[rev_b[ch]]
    ok = rev_only & (REV_P[cls_b[ch], up] > 0) & (up != rev_b[ch])
    rev_b[ch[ok]] = up[ok]
    cc = ch[~ok]
    new = pick(r, len(cc), CLS_P)
    while (same := new == cls_b[cc]).any():
        new[same] = pick(r, same.sum(), CLS_P)
    cls_b[cc] = new
    rev_b[cc] = np.minimum(
        (r.random(len(cc))[:, None] > np.cumsum(REV_P, 1)[new]).sum(1), len(REVSTATS) - 1
    )
    t["cls_B"], t["rev_B"], t["changed"] = cls_b, rev_b, np.zeros(nu, bool)
    t["changed"][ch] = True
    t["conf"] = r.integers(0, 300, nu)
    t["dis"] = pick(r, nu, DIS_P + [1 - sum(DIS_P)])
    t["mc"] = np.where(kind == 0, pick(r, nu, MC_SNV[1]), pick(r, nu, MC_INDEL[1]))
    t["vc"] = np.choose(kind, [0, 1, 2, 4]) + ((kind == 2) & (r.random(nu) < 0.5))
    t["rs"] = np.where(r.random(nu) < 0.75, r.integers(1_000, 2_000_000_000, nu), 0)
    t["origin"] = pick(r, nu, ORIGINS[1])
    _CLINVAR[n] = t
    return t


@functools.cache
def conf_table():
    r = rng(3)
    cats = [
        ["Pathogenic", "Likely_pathogenic"],
        ["Uncertain_significance"],
        ["Likely_benign", "Benign"],
    ]
    out = []
    for _ in range(300):
        chosen = r.choice(3, 2 if r.random() < 0.85 else 3, replace=False)
        out.append(
            ";CLNSIGCONF="
            + "|".join(
                f"{cats[c][r.integers(len(cats[c]))]}({min(r.geometric(0.6), 9)})" for c in chosen
            )
        )
    return strs(out)


CLINVAR_INFO = """\
##INFO=<ID=AF_ESP,Number=1,Type=Float,Description="allele frequencies from GO-ESP">
##INFO=<ID=AF_EXAC,Number=1,Type=Float,Description="allele frequencies from ExAC">
##INFO=<ID=AF_TGP,Number=1,Type=Float,Description="allele frequencies from TGP">
##INFO=<ID=ALLELEID,Number=1,Type=Integer,Description="the ClinVar Allele ID">
##INFO=<ID=CLNDN,Number=.,Type=String,Description="ClinVar's preferred disease name for the concept specified by disease identifiers in CLNDISDB">
##INFO=<ID=CLNDNINCL,Number=.,Type=String,Description="For included Variant : ClinVar's preferred disease name for the concept specified by disease identifiers in CLNDISDB">
##INFO=<ID=CLNDISDB,Number=.,Type=String,Description="Tag-value pairs of disease database name and identifier, e.g. OMIM:NNNNNN">
##INFO=<ID=CLNDISDBINCL,Number=.,Type=String,Description="For included Variant: Tag-value pairs of disease database name and identifier, e.g. OMIM:NNNNNN">
##INFO=<ID=CLNHGVS,Number=.,Type=String,Description="Top-level (primary assembly, alt, or patch) HGVS expression.">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status for the Variation ID">
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance for this single variant; multiple values are separated by a vertical bar">
##INFO=<ID=CLNSIGCONF,Number=.,Type=String,Description="Conflicting clinical significance for this single variant; multiple values are separated by a vertical bar">
##INFO=<ID=CLNSIGINCL,Number=.,Type=String,Description="Clinical significance for a haplotype or genotype that includes this variant. Reported as pairs of VariationID:clinical significance; multiple values are separated by a vertical bar">
##INFO=<ID=CLNVC,Number=1,Type=String,Description="Variant type">
##INFO=<ID=CLNVCSO,Number=1,Type=String,Description="Sequence Ontology id for variant type">
##INFO=<ID=CLNVI,Number=.,Type=String,Description="the variant's clinical sources reported as tag-value pairs of database and variant identifier">
##INFO=<ID=DBVARID,Number=.,Type=String,Description="nsv accessions from dbVar for the variant">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant reported as gene symbol:gene id. The gene symbol and id are delimited by a colon (:) and each pair is delimited by a vertical bar (|)">
##INFO=<ID=MC,Number=.,Type=String,Description="comma separated list of molecular consequence in the form of Sequence Ontology ID|molecular_consequence">
##INFO=<ID=ORIGIN,Number=.,Type=String,Description="Allele origin. One or more of the following values may be added: 0 - unknown; 1 - germline; 2 - somatic; 4 - inherited; 8 - paternal; 16 - maternal; 32 - de-novo; 64 - biparental; 128 - uniparental; 256 - not-tested; 512 - tested-inconclusive; 1073741824 - other">
##INFO=<ID=RS,Number=.,Type=String,Description="dbSNP ID (i.e. rs number)">
"""  # noqa: E501


def clinvar_header(date):
    contigs = "".join(
        f"##contig=<ID={c},length={n},assembly=GRCh38>\n"
        for c, n in zip(CHROMS, LENGTHS, strict=True)
    )
    return (
        f"##fileformat=VCFv4.1\n##fileDate={date}\n##source=ClinVar\n##reference=GRCh38\n{contigs}"
        f'##ID=<Description="ClinVar Variation ID">\n{CLINVAR_INFO}'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    )


def clinvar_lines(t, sl, release, ci, pos, ref, alt, kind):
    pos_s = itoa(pos)
    hg = join(strs(REFSEQ).take(ci), ":g.", pos_s, strs(ref), ">", strs(alt))
    ind = kind > 0
    if ind.any():
        hg = pc.replace_with_mask(
            hg, pa.array(ind), strs(hgvs_indel(ci[ind], pos[ind], ref[ind], alt[ind], kind[ind]))
        )
    gi = t["gene"][sl]
    sym = join("GENE", itoa(gi + 1))
    geneinfo = join(sym, ":", itoa(100_000 + gi))
    g2 = t["gene2"][sl]
    if (g2 >= 0).any():
        extra = join("|GENE", itoa(g2 + 1), ":", itoa(100_000 + g2))
        geneinfo = pc.if_else(pa.array(g2 >= 0), join(geneinfo, extra), geneinfo)
    dis = t["dis"][sl]
    own = pa.array(dis == len(DISEASES))
    dn = pc.if_else(
        own, join(sym, "-related_disorder"), strs([d[0] for d in DISEASES] + [""]).take(dis)
    )
    disdb = pc.if_else(
        own, join("MedGen:C", itoa(4_000_000 + gi)), strs([d[1] for d in DISEASES] + [""]).take(dis)
    )
    mc = np.where(kind == 0, t["mc"][sl], t["mc"][sl] + len(MC_SNV[0]))
    mc_s = strs([f";MC={m}" if m else "" for m in MC_SNV[0] + MC_INDEL[0]]).take(mc)
    rs = t["rs"][sl]
    rs_s = pc.if_else(pa.array(rs > 0), join(";RS=", itoa(rs)), pa.scalar(""))
    cls, rev = t["cls_" + release][sl], t["rev_" + release][sl]
    conf = pc.if_else(pa.array(cls == CONFLICTING), conf_table().take(t["conf"][sl]), pa.scalar(""))
    vc = t["vc"][sl]
    # fmt: off
    return join(
        strs(CHROMS).take(ci), "\t", pos_s, "\t", itoa(t["varid"][sl]), "\t", strs(ref), "\t",
        strs(alt), "\t.\t.\tALLELEID=", itoa(t["alleleid"][sl]), ";CLNDISDB=", disdb,
        ";CLNDN=", dn, ";CLNHGVS=", hg, ";CLNREVSTAT=", strs(REVSTATS).take(rev),
        ";CLNSIG=", strs([c[0] for c in CLASSES]).take(cls), conf,
        ";CLNVC=", strs([v[0] for v in VC]).take(vc),
        ";CLNVCSO=", strs([v[1] for v in VC]).take(vc),
        ";GENEINFO=", geneinfo, mc_s, ";ORIGIN=", strs(ORIGINS[0]).take(t["origin"][sl]), rs_s,
        "\n")
    # fmt: on


# ---- writing -----------------------------------------------------------------------------------
class BGZWriter:
    """Stream text into `bgzip` (or pysam's BGZF writer if bgzip is missing); atomic rename.
    Writes go through a small queue and a thread, so generation overlaps compression."""

    def __init__(self, path, threads=2, level=None):
        self.path, self.tmp = Path(path), Path(str(path) + ".tmp")
        if shutil.which("bgzip"):
            self.out = open(self.tmp, "wb")  # noqa: SIM115 (closed in close())
            lv = [] if level is None else [f"-l{level}"]
            self.proc = subprocess.Popen(
                ["bgzip", f"-@{threads}", *lv, "-c"],
                stdin=subprocess.PIPE,
                stdout=self.out,
                bufsize=1 << 20,
            )
            self.f = self.proc.stdin
        else:
            import pysam

            self.proc, self.f = None, pysam.BGZFile(str(self.tmp), "wb")
        self.q = queue.Queue(2)
        self.thread = threading.Thread(target=self._drain)
        self.thread.start()

    def _drain(self):
        self.error = None
        while (data := self.q.get()) is not None:
            try:
                self.error or self.f.write(data)
            except OSError as e:  # keep draining so the producer never blocks; reported by close()
                self.error = e

    def write(self, data):
        if isinstance(data, pa.Array):
            off = np.frombuffer(data.buffers()[1], np.int32)
            a, b = off[data.offset], off[data.offset + len(data)]
            data = memoryview(data.buffers()[2])[a:b]
        elif isinstance(data, str):
            data = data.encode()
        self.q.put(data)  # (an Arrow buffer stays alive with the memoryview)

    def close(self):
        self.q.put(None)
        self.thread.join()
        if self.error:
            raise RuntimeError(f"writing {self.path} failed: {self.error}")
        self.f.close()
        if self.proc:
            if self.proc.wait():
                raise RuntimeError(f"bgzip failed for {self.path}")
            self.out.close()
        self.tmp.replace(self.path)


def tabix(path):
    if shutil.which("tabix"):
        subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    else:
        import pysam

        pysam.tabix_index(str(path), preset="vcf", force=True, keep_original=True)


def gen_clinvar(out, n):
    t = clinvar_table(n)
    wa, wb = BGZWriter(out / "clinvar_A.vcf.gz"), BGZWriter(out / "clinvar_B.vcf.gz")
    wa.write(clinvar_header("2024-01-07"))
    wb.write(clinvar_header("2024-02-04"))
    keys = t["keys"]
    for s in range(0, len(keys), CHUNK):
        sl = slice(s, s + CHUNK)
        dec = alleles(keys[sl])
        lines = clinvar_lines(t, sl, "A", *dec)  # also release B's line, except where B changed
        wa.write(lines.filter(pa.array(~t["added"][sl])))
        ch = t["changed"][sl]
        lines = pc.replace_with_mask(
            lines,
            pa.array(ch),
            clinvar_lines(t, np.arange(s, s + len(ch))[ch], "B", *(x[ch] for x in dec)),
        )
        wb.write(lines.filter(pa.array(~t["removed"][sl])))
    wa.close()
    wb.close()
    tabix(out / "clinvar_A.vcf.gz")
    tabix(out / "clinvar_B.vcf.gz")
    return dict(
        records_A=int((~t["added"]).sum()),
        records_B=int((~t["removed"]).sum()),
        added=int(t["added"].sum()),
        removed=int(t["removed"].sum()),
        changed=int(t["changed"].sum()),
    )


def contig_lines():
    """The ##contig lines of the bench's patient VCFs (UCSC names, GRCh38 lengths)."""
    return "".join(f"##contig=<ID={c},length={n},assembly=GRCh38>\n"
                   for c, n in zip(UCSC, LENGTHS, strict=True))


def sample_header(sample, date="2024-03-01"):
    contigs = contig_lines()
    return (
        f"##fileformat=VCFv4.2\n##fileDate={date}\n##source=varreinterp-bench-synthetic\n##reference=GRCh38\n"
        f'{contigs}##FILTER=<ID=PASS,Description="All filters passed">\n'
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total read depth">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">\n'
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n'
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}\n"
    )


def site_prefix(r, keys):
    """Per key 'chr1 pos . REF ALT QUAL PASS DP=n GT:DP:GQ ' (tab-separated); and the DPs."""
    ci, pos, ref, alt, _ = alleles(keys)
    dp = r.integers(8, 90, len(keys))
    # fmt: off
    return join(strs(UCSC).take(ci), "\t", itoa(pos), "\t.\t", strs(ref), "\t", strs(alt), "\t",
                itoa(r.integers(30, 3000, len(keys))), "\tPASS\tDP=", itoa(dp), "\tGT:DP:GQ\t"), dp
    # fmt: on


def clinvar_subset(r, clinvar_n, m):
    t = clinvar_table(clinvar_n)
    return np.sort(r.choice(t["keys"][~t["added"]], m, replace=False))


def with_clinvar(r, clinvar_n, n, frac, sites):
    """n sorted distinct keys: round(frac * n) clinvar_A sites (also returned), the rest random
    variants at sites(m) -> (contig index, pos)."""
    cv = clinvar_subset(r, clinvar_n, round(frac * n))

    def make(m):
        k = random_keys(r, *sites(m))
        return k[~isin(k, cv)]

    return uniq(np.concatenate([cv, unique_keys(make, n - len(cv))])), cv


def gen_sample_vcf(path, n, clinvar_n, sample, in_genes):
    r = rng(4, n)

    def sites(m):
        return gene_sites(r, m, weighted=False)[1:] if in_genes else uniform_sites(r, m)

    keys, cv = with_clinvar(r, clinvar_n, n, 0.05, sites)
    w = BGZWriter(path)
    w.write(sample_header(sample))
    gts = strs(["0/1", "1/1", "./.", "0/0"])
    for s in range(0, n, 2 * CHUNK):
        k = keys[s : s + 2 * CHUNK]
        prefix, dp = site_prefix(r, k)
        gt = pick(r, len(k), [0.60, 0.35, 0.025, 0.025])
        gq = np.minimum(99, r.integers(20, 140, len(k)))
        smp = join(gts.take(gt), ":", itoa(dp), ":", itoa(gq), "\n")
        w.write(join(prefix, pc.if_else(pa.array(gt == 2), pa.scalar("./.:.:.\n"), smp)))
    w.close()
    tabix(path)
    return dict(records=int(n), clinvar_sites=len(cv))


def gen_cohort(out, size, per_patient, pool_n, clinvar_n):
    d = out / "cohort"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    r = rng(5)
    keys, cv = with_clinvar(r, clinvar_n, pool_n, 0.05, lambda m: gene_sites(r, m, False)[1:])
    # frequencies: ~57% common (mean .95), the rest rare; rescaled so a patient carries ~per_patient
    common = r.random(len(keys)) < 0.57
    freq = np.where(common, r.beta(30, 1.5, len(keys)), r.beta(0.4, 0.8, len(keys)))
    freq = np.clip(freq * per_patient / freq.sum(), 0, 1)
    prefix, _ = site_prefix(r, keys)
    is_cv = isin(keys, cv)
    gts = [
        f"{gt}:{dp}:{gq}\n"
        for gt in ("0/1", "1/1")
        for dp in range(10, 74)
        for gq in (45, 60, 80, 99)
    ]
    samples = strs(gts)  # 256 het then 256 hom-alt sample columns

    def one(p):
        rp = rng(6, p)
        carried = np.nonzero(rp.random(len(keys)) < freq)[0]
        hom = rp.random(len(carried)) < np.where(freq[carried] > 0.9, 0.45, 0.2)
        w = BGZWriter(d / f"P{p:04d}.vcf.gz", threads=1, level=1)  # level 1: 4x faster, ~20% larger
        w.write(sample_header(f"P{p:04d}"))
        smp = samples.take(hom * 256 + rp.integers(0, 256, len(carried)))
        w.write(join(prefix.take(carried), smp))
        w.close()
        return len(carried), int(is_cv[carried].sum())

    with ThreadPoolExecutor(2) as ex:
        counts = list(ex.map(one, range(1, size + 1)))
    total = sum(c[0] for c in counts)
    return dict(patients=size, pool=len(keys), alleles_total=total,
                alleles_per_patient=round(total / max(size, 1), 1),
                clinvar_alleles_total=sum(c[1] for c in counts))  # fmt: skip


def joint_header(samples, date="2024-03-01"):
    contigs = contig_lines()
    return (
        f"##fileformat=VCFv4.2\n##fileDate={date}\n##source=varreinterp-bench-joint\n"
        f"##reference=GRCh38\n{contigs}##FILTER=<ID=PASS,Description=\"All filters passed\">\n"
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total read depth">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n'
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">\n'
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n'
        '##FORMAT=<ID=PL,Number=G,Type=Integer,Description="Phred-scaled likelihoods">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n"
    )


def gen_joint(path, n, n_samples, clinvar_n):
    """A joint-called cohort VCF: n records (5% at clinvar_A sites) x n_samples, FORMAT
    GT:AD:DP:GQ:PL as GATK writes it; genotypes drawn from per-site allele frequencies."""
    r = rng(7, n, n_samples)
    keys, cv = with_clinvar(r, clinvar_n, n, 0.05, lambda m: gene_sites(r, m, False)[1:])
    prefix, _ = site_prefix(r, keys)
    prefix = pc.replace_substring(prefix, "GT:DP:GQ\t", "GT:AD:DP:GQ:PL\t")
    # 3 genotypes x 64 (AD, DP, GQ, PL) variants, plus no-calls: a realistic byte mix
    calls = {0: [], 1: [], 2: []}
    for g, gt in enumerate(("0/0", "0/1", "1/1")):
        for v in range(64):
            dp = 8 + (v * 7) % 60
            alt = (0, dp // 2, dp)[g]
            gq = 20 + (v * 13) % 80
            pl = ("0,{a},{b}", "{a},0,{b}", "{b},{a},0")[g].format(a=gq, b=gq * 10 + v)
            calls[g].append(f"{gt}:{dp - alt},{alt}:{dp}:{gq}:{pl}")
    table = np.array(calls[0] + calls[1] + calls[2] + ["./.:.:.:.:."], dtype=object)
    freq = np.clip(r.beta(0.5, 4.0, len(keys)), 0.001, 0.999)
    w = BGZWriter(path)
    w.write(joint_header([f"S{i:05d}" for i in range(1, n_samples + 1)]))
    prefix_list = prefix.to_pylist()
    for i in range(len(keys)):
        u = r.random((2, n_samples)) < freq[i]
        g = u.sum(axis=0)
        idx = g * 64 + r.integers(0, 64, n_samples)
        idx[r.random(n_samples) < 0.01] = len(table) - 1
        w.write(prefix_list[i] + "\t".join(table[idx]) + "\n")
    w.close()
    tabix(path)
    return dict(records=int(len(keys)), samples=n_samples, clinvar_sites=len(cv))


def gen_cohort_bulk(out, size, per_file, per_patient, pool_n, clinvar_n):
    """`size` exomes drawn as gen_cohort draws them (same key pool and frequencies), written in
    bulk: multi-sample VCFs of `per_file` patients each (GT only; 0/0 where not carried), which
    `cohort add` registers in one pass per file."""
    d = out / "cohort_bulk"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    r = rng(5)
    keys, cv = with_clinvar(r, clinvar_n, pool_n, 0.05, lambda m: gene_sites(r, m, False)[1:])
    common = r.random(len(keys)) < 0.57
    freq = np.where(common, r.beta(30, 1.5, len(keys)), r.beta(0.4, 0.8, len(keys)))
    freq = np.clip(freq * per_patient / freq.sum(), 0, 1)
    prefix, _ = site_prefix(r, keys)
    prefix = pc.replace_substring(prefix, "GT:DP:GQ\t", "GT\t").to_pylist()
    hom_p = np.where(freq > 0.9, 0.45, 0.2)
    table = np.array(["0/0", "0/1", "1/1"], dtype=object)

    def one(f):
        first = f * per_file + 1
        names = [f"P{p:05d}" for p in range(first, min(first + per_file, size + 1))]
        rf = rng(8, f)
        w = BGZWriter(d / f"B{f:03d}.vcf.gz", threads=1, level=1)
        w.write(joint_header(names))
        total = 0
        for i in range(len(keys)):
            carried = rf.random(len(names)) < freq[i]
            g = carried * (1 + (rf.random(len(names)) < hom_p[i]))
            total += int(carried.sum())
            w.write(prefix[i] + "\t".join(table[g]) + "\n")
        w.close()
        return total

    files = (size + per_file - 1) // per_file
    with ThreadPoolExecutor(2) as ex:
        counts = list(ex.map(one, range(files)))
    return dict(patients=size, files=files, pool=len(keys), alleles_total=sum(counts),
                alleles_per_patient=round(sum(counts) / max(size, 1), 1))


# ---- driver ------------------------------------------------------------------------------------
def sizes(scale=1.0, cohort_size=None):
    s = {k: max(1, round(v * scale)) for k, v in SIZES.items()}
    if cohort_size is not None:
        s["cohort"] = cohort_size
    return s


def products(out, sz):
    """name -> (parameters, files that must exist, generator)."""
    cv = dict(version=VERSION, seed=SEED, clinvar=sz["clinvar"])
    n_cv = sz["clinvar"]
    # fmt: off
    return {
        "clinvar": (cv, [f"clinvar_{x}.vcf.gz{t}" for x in "AB" for t in ("", ".tbi")],
                    lambda: gen_clinvar(out, n_cv)),
        "wgs": (dict(cv, n=sz["wgs"]), ["wgs.vcf.gz", "wgs.vcf.gz.tbi"],
                lambda: gen_sample_vcf(out / "wgs.vcf.gz", sz["wgs"], n_cv, "WGS01", False)),
        "exome": (dict(cv, n=sz["exome"]), ["exome.vcf.gz", "exome.vcf.gz.tbi"],
                  lambda: gen_sample_vcf(out / "exome.vcf.gz", sz["exome"], n_cv, "EXOME01", True)),
        "cohort": (dict(cv, size=sz["cohort"], per_patient=sz["per_patient"], pool=sz["pool"]),
                   [f"cohort/P{sz['cohort']:04d}.vcf.gz"],
                   lambda: gen_cohort(out, sz["cohort"], sz["per_patient"], sz["pool"], n_cv)),
        "cohort_bulk": (dict(cv, size=sz["cohort_bulk"], per_file=BULK_PER_FILE,
                             per_patient=sz["per_patient"], pool=sz["pool"]),
                        [f"cohort_bulk/B{(sz['cohort_bulk'] - 1) // BULK_PER_FILE:03d}.vcf.gz"],
                        lambda: gen_cohort_bulk(out, sz["cohort_bulk"], BULK_PER_FILE,
                                                sz["per_patient"], sz["pool"], n_cv)),
        **{f"joint{k}": (dict(cv, n=sz["joint"], samples=k), [f"joint_{k}.vcf.gz"],
                         functools.partial(lambda k: gen_joint(out / f"joint_{k}.vcf.gz",
                                                               sz["joint"], k, n_cv), k))
           for k in JOINT_SAMPLES},
    }
    # fmt: on


def stamp(out, name):
    try:
        return json.loads((out / f".stamp.{name}.json").read_text())
    except (OSError, ValueError):
        return None


def ensure(out=DEFAULT_OUT, scale=1.0, cohort_size=None, only=None, force=False, log=print):
    """Generate missing/stale products; return {name: stamp dict (params, meta, seconds, bytes)}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, (params, files, fn) in products(out, sizes(scale, cohort_size)).items():
        if only and name not in only:
            continue
        st = stamp(out, name)
        fresh = st and st.get("params") == params and all((out / f).exists() for f in files)
        if fresh and not force:
            result[name] = st
            continue
        log(f"generating {name} {params} ...")
        (out / f".stamp.{name}.json").unlink(missing_ok=True)
        t0 = time.perf_counter()
        meta = fn()
        made = (out / "cohort").glob("*.vcf.gz") if name == "cohort" else [
            out / f for f in files if not f.endswith(".tbi")]  # fmt: skip
        size = sum(f.stat().st_size for f in made)
        st = dict(params=params, meta=meta, seconds=round(time.perf_counter() - t0, 1), bytes=size)
        (out / f".stamp.{name}.json").write_text(json.dumps(st, indent=1))
        log(f"  {name}: {st['seconds']} s, {size / 1e6:.1f} MB, {meta}")
        result[name] = st
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add = ap.add_argument
    add("--out", type=Path, default=DEFAULT_OUT, help="work dir (default: .bench/)")
    add("--scale", type=float, default=1.0, help="multiply all sizes (e.g. 0.01 for a test)")
    add("--cohort-size", type=int, help="number of cohort patients (default 1000 x scale)")
    add("--only", help="comma list of: clinvar,wgs,exome,cohort")
    add("--force", action="store_true", help="regenerate even if the stamp matches")
    a = ap.parse_args()
    ensure(a.out, a.scale, a.cohort_size, a.only.split(",") if a.only else None, a.force)


if __name__ == "__main__":
    sys.exit(main())
