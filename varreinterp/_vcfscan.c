/* The data lines of a VCF, split into the columns a snapshot import needs, at C speed.

   One pass over a run of whole LF-terminated lines: CHROM, ID, REF, ALT as they are, POS
   checked and converted, and the value of each requested INFO key (the text after the first
   `KEY=` entry up to the next ';', the same rule as clinvar_vcf.info_sql). Each text column
   comes back as Arrow's string layout (int32 offsets, data), which pyarrow wraps without
   copying. The scan runs without the GIL, so two chunks scan on two cores. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 32
#define MAX_POS 2147483647LL

enum { OK = 0, E_COLUMNS = 1, E_POS = 2, E_EMPTY = 3, E_MEMORY = 4, E_TOO_LONG = 5 };

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_put(Buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return E_MEMORY;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return OK;
}

typedef struct {
    Buf data, offsets;
} Column;

static int column_push(Column *c, const char *s, size_t n) {
    if (buf_put(&c->data, s, n)) return E_MEMORY;
    if (c->data.len > INT32_MAX) return E_TOO_LONG;
    int32_t end = (int32_t)c->data.len;
    return buf_put(&c->offsets, &end, sizeof end);
}

typedef struct {
    const char *text;
    size_t size;
    Py_ssize_t ncols, nkeys;
    const char *key[MAX_KEYS];
    size_t key_len[MAX_KEYS];
    Column *cols; /* chrom, id, ref, alt, then one per key */
    Buf pos;
    int64_t rows, line;
    int error;
    int64_t detail;
} Scan;

static int parse_pos(const char *s, size_t n, int64_t *out) {
    if (n < 1 || n > 10) return E_POS;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return E_POS;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > MAX_POS) return E_POS;
    *out = v;
    return OK;
}

static int scan_line(Scan *sc, const char *p, const char *end) {
    const char *field[8];
    size_t flen[8];
    Py_ssize_t nf = 0;
    const char *q = p;
    for (;;) {
        const char *tab = memchr(q, '\t', (size_t)(end - q));
        const char *fe = tab ? tab : end;
        if (nf < 8) {
            field[nf] = q;
            flen[nf] = (size_t)(fe - q);
        }
        nf++;
        if (!tab) break;
        q = tab + 1;
    }
    if (nf != sc->ncols) {
        sc->detail = nf;
        return E_COLUMNS;
    }
    int64_t pos;
    if (flen[0] == 0 || flen[3] == 0) return E_EMPTY;
    if (parse_pos(field[1], flen[1], &pos)) return E_POS;
    int rc = buf_put(&sc->pos, &pos, sizeof pos);
    static const int fixed[4] = {0, 2, 3, 4};
    for (int i = 0; i < 4 && !rc; i++) rc = column_push(&sc->cols[i], field[fixed[i]], flen[fixed[i]]);
    if (rc) return rc;

    const char *value[MAX_KEYS] = {0};
    size_t value_len[MAX_KEYS] = {0};
    Py_ssize_t missing = sc->nkeys;
    const char *s = field[7], *info_end = field[7] + flen[7];
    while (s < info_end && missing) {
        const char *semi = memchr(s, ';', (size_t)(info_end - s));
        const char *entry_end = semi ? semi : info_end;
        const char *eq = memchr(s, '=', (size_t)(entry_end - s));
        if (eq) {
            size_t klen = (size_t)(eq - s);
            for (Py_ssize_t k = 0; k < sc->nkeys; k++) {
                if (!value[k] && sc->key_len[k] == klen && memcmp(sc->key[k], s, klen) == 0) {
                    value[k] = eq + 1;
                    value_len[k] = (size_t)(entry_end - eq - 1);
                    missing--;
                    break;
                }
            }
        }
        if (!semi) break;
        s = semi + 1;
    }
    for (Py_ssize_t k = 0; k < sc->nkeys && !rc; k++)
        rc = column_push(&sc->cols[4 + k], value[k] ? value[k] : "", value_len[k]);
    return rc;
}

static void scan_text(Scan *sc) {
    const char *p = sc->text, *end = sc->text + sc->size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        if (line_end > p) { /* blank lines carry nothing; the SQL reader skips them too */
            sc->error = scan_line(sc, p, line_end);
            if (sc->error) return;
            sc->rows++;
        }
        sc->line++;
        p = line_end + 1;
    }
}

static PyObject *take_bytes(Buf *b) {
    PyObject *out = PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    return out;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer text;
    Py_ssize_t ncols;
    PyObject *keys;
    if (!PyArg_ParseTuple(args, "y*nO!", &text, &ncols, &PyTuple_Type, &keys)) return NULL;
    Scan sc;
    memset(&sc, 0, sizeof sc);
    sc.text = text.buf;
    sc.size = (size_t)text.len;
    sc.ncols = ncols;
    sc.nkeys = PyTuple_GET_SIZE(keys);
    PyObject *result = NULL;
    if (ncols < 8 || sc.nkeys > MAX_KEYS) {
        PyErr_SetString(PyExc_ValueError, "need at least 8 columns and at most 32 keys");
        goto done_buffer;
    }
    for (Py_ssize_t k = 0; k < sc.nkeys; k++) {
        PyObject *key = PyTuple_GET_ITEM(keys, k);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            goto done_buffer;
        }
        sc.key[k] = PyBytes_AS_STRING(key);
        sc.key_len[k] = (size_t)PyBytes_GET_SIZE(key);
    }
    Py_ssize_t ncolumns = 4 + sc.nkeys;
    sc.cols = calloc((size_t)ncolumns, sizeof(Column));
    if (!sc.cols) {
        PyErr_NoMemory();
        goto done_buffer;
    }
    int32_t zero = 0;
    for (Py_ssize_t i = 0; i < ncolumns; i++)
        if (buf_put(&sc.cols[i].offsets, &zero, sizeof zero)) sc.error = E_MEMORY;
    if (!sc.error) {
        Py_BEGIN_ALLOW_THREADS
        scan_text(&sc);
        Py_END_ALLOW_THREADS
    }
    if (sc.error == E_MEMORY) {
        PyErr_NoMemory();
        goto done_columns;
    }
    PyObject *columns = PyTuple_New(ncolumns);
    if (!columns) goto done_columns;
    for (Py_ssize_t i = 0; i < ncolumns; i++) {
        PyObject *pair = Py_BuildValue("(NN)", take_bytes(&sc.cols[i].offsets),
                                       take_bytes(&sc.cols[i].data));
        if (!pair) {
            Py_DECREF(columns);
            goto done_columns;
        }
        PyTuple_SET_ITEM(columns, i, pair);
    }
    result = Py_BuildValue("(LiLLNN)", (long long)sc.rows, sc.error, (long long)sc.line,
                           (long long)sc.detail, take_bytes(&sc.pos), columns);
done_columns:
    for (Py_ssize_t i = 0; i < ncolumns; i++) {
        free(sc.cols[i].data.data);
        free(sc.cols[i].offsets.data);
    }
    free(sc.cols);
    free(sc.pos.data);
done_buffer:
    PyBuffer_Release(&text);
    return result;
}

/* ------------------------------------------------------------------ patient prefilter

   prefilter(text, n_tabs, samples, left_align) -> None | (n, starts, ends, pos, usable,
   filter_ok, codes, runs): the per-line facts prefilter.py needs to drop the substitutions no
   snapshot lists, for a run of whole lines of a patient VCF. The same rules as the numpy
   scanner in prefilter.py (which stays for machines without this extension; the tests
   compare the two): None where that scanner raises _Unsuitable. */

static const unsigned char *byte_at(const char *text, size_t size, size_t i) {
    static const unsigned char zero = 0;
    return i < size ? (const unsigned char *)text + i : &zero;
}

static int is_acgt(unsigned char c) {
    switch (c) {
    case 'A': case 'C': case 'G': case 'T': case 'a': case 'c': case 'g': case 't': return 1;
    default: return 0;
    }
}

static int is_acgtn(unsigned char c) { return is_acgt(c) || c == 'N' || c == 'n'; }

static int is_call(unsigned char c) { return c == '0' || c == '1' || c == '.'; }

static int usable_alleles(const unsigned char *ref, size_t rl, const unsigned char *alt,
                          size_t al, int left_align) {
    if (rl == 1 && al == 1 && is_acgt(ref[0]) && is_acgt(alt[0])) return 1;
    if (rl < 1 || al < 1 || rl > 8 || al > 8) return 0;
    for (size_t i = 0; i < rl; i++)
        if (!is_acgtn(ref[i])) return 0;
    for (size_t i = 0; i < al; i++)
        if (!is_acgtn(alt[i])) return 0;
    if (rl > 1 && al > 1 &&
        ((ref[0] & 0xDF) == (alt[0] & 0xDF) || (ref[rl - 1] & 0xDF) == (alt[al - 1] & 0xDF)))
        return 0; /* would be trimmed */
    if (left_align && rl != al) return 0;
    return 1;
}

typedef struct {
    Buf starts, ends, pos, usable, filter_ok, codes, runs;
} Lines;

#define MAX_CONTIG_NAME 256

typedef struct {
    const char *text;
    size_t size;
    Py_ssize_t n_tabs, n_sel;
    const Py_ssize_t *sample;
    int left_align;
    const char *prev_name;
    size_t prev_len;
    int64_t n;
    Lines out;
} Prefilter;

/* One line: `start` its first byte, tab_pos[0..n_tabs-1] its tabs, tab_pos[n_tabs] its
   newline. -1: unsuitable. */
static int prefilter_line(Prefilter *pf, size_t start, const size_t *tab_pos) {
    const char *text = pf->text;
    size_t size = pf->size;
    size_t name_len = tab_pos[0] - start;
    if (name_len < 1 || name_len > MAX_CONTIG_NAME) return -1;
    /* POS: plain digits, 1 to 2^31-1 */
    size_t p0 = tab_pos[0] + 1, plen = tab_pos[1] - p0;
    if (plen < 1 || plen > 10) return -1;
    int64_t pos = 0;
    for (size_t j = 0; j < plen; j++) {
        unsigned char c = (unsigned char)text[p0 + j];
        if (c < '0' || c > '9') return -1;
        pos = pos * 10 + (c - '0');
    }
    if (pos < 1 || pos > MAX_POS) return -1;
    const unsigned char *ref = (const unsigned char *)text + tab_pos[2] + 1;
    const unsigned char *alt = (const unsigned char *)text + tab_pos[3] + 1;
    uint8_t usable = (uint8_t)usable_alleles(ref, tab_pos[3] - tab_pos[2] - 1, alt,
                                             tab_pos[4] - tab_pos[3] - 1, pf->left_align);
    const unsigned char *f = (const unsigned char *)text + tab_pos[5] + 1;
    uint8_t filter_ok = f[0] == '\t' || (f[0] == '.' && f[1] == '\t') ||
                        (tab_pos[6] - tab_pos[5] - 1 == 4 && memcmp(f, "PASS", 4) == 0);
    if (pf->n_sel) {
        const unsigned char *g = byte_at(text, size, tab_pos[7] + 1);
        const unsigned char *g1 = byte_at(text, size, tab_pos[7] + 2);
        const unsigned char *g2 = byte_at(text, size, tab_pos[7] + 3);
        if (!(*g == 'G' && *g1 == 'T' && (*g2 == ':' || *g2 == '\t'))) usable = 0;
    }
    for (Py_ssize_t s = 0; s < pf->n_sel; s++) {
        size_t a = tab_pos[8 + pf->sample[s]] + 1;
        size_t len = tab_pos[9 + pf->sample[s]] - a;
        unsigned char b0 = *byte_at(text, size, a), b1 = *byte_at(text, size, a + 1);
        unsigned char b2 = *byte_at(text, size, a + 2), b3 = *byte_at(text, size, a + 3);
        int one = len == 1 || (len >= 2 && b1 == ':');
        int three = !one && !(len >= 3 && b2 == ':') && (len == 3 || (len >= 4 && b3 == ':'));
        int ok = len >= 1 && b0 != ':' && (one || three) &&
                 (three ? is_call(b0) && (b1 == '/' || b1 == '|') && is_call(b2) : is_call(b0));
        if (!ok) usable = 0;
        uint64_t code = three ? ((uint64_t)b0 | (uint64_t)b1 << 8 | (uint64_t)b2 << 16 |
                                 (uint64_t)3 << 24)
                              : ((uint64_t)b0 | (uint64_t)1 << 24);
        if (buf_put(&pf->out.codes, &code, sizeof code)) return E_MEMORY;
    }
    const char *name = text + start;
    if (!pf->prev_name || name_len != pf->prev_len || memcmp(name, pf->prev_name, name_len)) {
        if (buf_put(&pf->out.runs, &pf->n, sizeof pf->n)) return E_MEMORY;
        pf->prev_name = name;
        pf->prev_len = name_len;
    }
    int64_t line_start = (int64_t)start, line_end = (int64_t)tab_pos[pf->n_tabs];
    if (buf_put(&pf->out.starts, &line_start, sizeof line_start) ||
        buf_put(&pf->out.ends, &line_end, sizeof line_end) ||
        buf_put(&pf->out.pos, &pos, sizeof pos) || buf_put(&pf->out.usable, &usable, 1) ||
        buf_put(&pf->out.filter_ok, &filter_ok, 1))
        return E_MEMORY;
    pf->n++;
    return OK;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static int prefilter_text(Prefilter *pf, size_t *tab_pos) {
    const char *text = pf->text;
    size_t size = pf->size;
    /* Non-ASCII, NUL and the other bytes below TAB, CR: left to the full reader. A flat loop
       the compiler vectorizes; afterwards every byte below 11 is a TAB or a newline. */
    unsigned char bad = 0;
    for (size_t j = 0; j < size; j++) {
        unsigned char c = (unsigned char)text[j];
        bad |= (unsigned char)((c < 9) | (c == '\r') | (c >= 128));
    }
    if (bad) return -1;
    Py_ssize_t k = 0;
    size_t line_start = 0;
    int rc;
#define DELIMITER(at)                                                                   \
    do {                                                                                \
        size_t at_ = (at);                                                              \
        if (text[at_] == '\t') {                                                        \
            if (k >= pf->n_tabs) return -1; /* another column count */                  \
            tab_pos[k++] = at_;                                                         \
        } else {                                                                        \
            if (k != pf->n_tabs) return -1; /* another column count, a blank line */    \
            tab_pos[k] = at_;                                                           \
            if ((rc = prefilter_line(pf, line_start, tab_pos))) return rc;              \
            k = 0;                                                                      \
            line_start = at_ + 1;                                                       \
        }                                                                               \
    } while (0)
    size_t j = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Eight bytes at a time: with every byte ASCII, setting its high bit keeps the
       subtraction from borrowing across bytes, so the flags are exact. */
    for (; j + 8 <= size; j += 8) {
        uint64_t x;
        memcpy(&x, text + j, 8);
        uint64_t m = ~((x | HIGHS) - ONES * 11) & HIGHS;
        while (m) {
            DELIMITER(j + ((size_t)__builtin_ctzll(m) >> 3));
            m &= m - 1;
        }
    }
#endif
    for (; j < size; j++)
        if ((unsigned char)text[j] < 11) DELIMITER(j);
#undef DELIMITER
    return line_start == size ? OK : -1; /* the last line must end with its newline */
}

static PyObject *prefilter(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer text;
    Py_ssize_t n_tabs;
    PyObject *samples;
    int left_align;
    if (!PyArg_ParseTuple(args, "y*nO!p", &text, &n_tabs, &PyTuple_Type, &samples, &left_align))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n_sel = PyTuple_GET_SIZE(samples);
    Py_ssize_t *sample = NULL;
    size_t *tab_pos = NULL;
    Lines out;
    memset(&out, 0, sizeof out);
    if (n_tabs < 8) {
        PyErr_SetString(PyExc_ValueError, "need at least 8 tabs");
        goto done;
    }
    sample = calloc((size_t)n_sel + 1, sizeof *sample);
    tab_pos = calloc((size_t)n_tabs + 2, sizeof *tab_pos);
    if (!sample || !tab_pos) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t s = 0; s < n_sel; s++) {
        sample[s] = PyLong_AsSsize_t(PyTuple_GET_ITEM(samples, s));
        if (sample[s] == -1 && PyErr_Occurred()) goto done;
        if (sample[s] < 0 || 9 + sample[s] > n_tabs) {
            PyErr_SetString(PyExc_ValueError, "sample index out of range");
            goto done;
        }
    }
    Prefilter pf = {.text = text.buf, .size = (size_t)text.len, .n_tabs = n_tabs,
                    .n_sel = n_sel, .sample = sample, .left_align = left_align};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = prefilter_text(&pf, tab_pos);
    Py_END_ALLOW_THREADS
    out = pf.out;
    if (rc == E_MEMORY) {
        PyErr_NoMemory();
        goto done;
    }
    if (rc) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = Py_BuildValue("(LNNNNNNN)", (long long)pf.n, take_bytes(&out.starts),
                           take_bytes(&out.ends), take_bytes(&out.pos), take_bytes(&out.usable),
                           take_bytes(&out.filter_ok), take_bytes(&out.codes),
                           take_bytes(&out.runs));
done:
    free(out.starts.data);
    free(out.ends.data);
    free(out.pos.data);
    free(out.usable.data);
    free(out.filter_ok.data);
    free(out.codes.data);
    free(out.runs.data);
    free(sample);
    free(tab_pos);
    PyBuffer_Release(&text);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(text, ncols, keys) -> (rows, error, line, detail, pos, columns)"},
    {"prefilter", prefilter, METH_VARARGS,
     "prefilter(text, n_tabs, samples, left_align) -> None | (n, starts, ends, pos, usable, "
     "filter_ok, codes, runs)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_vcfscan", .m_size = -1,
                                    .m_methods = methods};

/* Raised with every change of a function's arguments or results: vcfscan.py ignores a module
   built from an older source (an editable install updated without a rebuild). */
#define ABI 2

PyMODINIT_FUNC PyInit__vcfscan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
