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

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(text, ncols, keys) -> (rows, error, line, detail, pos, columns)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_vcfscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__vcfscan(void) { return PyModule_Create(&module); }
