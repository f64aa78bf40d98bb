/* Story fingerprints in C: the words, shingles, MinHash signature, LSH band keys and
 * containment of monitor/cluster.py, bit for bit.
 *
 * Built at install when a C compiler is there (setup.py: an optional extension);
 * monitor/cluster.py uses it unless NEWSMON_PURE_PYTHON=1, and its pure-Python forms are
 * the reference: tests/test_cluster_native.py proves the two agree. Fingerprints are
 * stored in users' databases, so every step computes what the Python forms compute:
 * zlib's CRC-32 of each lower-cased word, CPython's hash of a tuple of ints (an int below
 * 2**61 - 1 hashes to itself; the tuple hash is Objects/tupleobject.c's, xxHash-style),
 * Python's floor division and modulo. The module compares its tuple hash with the
 * interpreter's when imported and refuses to load if they differ, so an interpreter
 * that hashes otherwise gets the Python forms rather than other fingerprints.
 *
 * The words are cluster.shingles_python's: in text that is ASCII but for typographic
 * separators, runs of ASCII letters and digits; in other text, what ``_WORD`` finds in
 * the text lower-cased by str.lower itself (the separators first made spaces, as there):
 * a single character of the CJK ranges, or a run of characters that are alphanumeric by
 * Py_UNICODE_ISALNUM, which is how the re module decides ``[^\W_]``.
 * Only the CPython C API is used, no other library.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BINS 126
#define ROWS 3
#define BANDS (BINS / ROWS)
#define SHINGLE_WORDS 4
#define MIN_SHINGLES 30
#define SIGNATURE_BYTES (BINS * 4)

/* zlib's CRC-32 (the reflected IEEE 802.3 polynomial), a byte at a time: words are short. */
static uint32_t crc_table[256];

/* ASCII as cluster._ASCII_WORDS splits it: a letter or digit is its lower-case byte,
 * anything else 0, a separator. */
static unsigned char word_byte[128];

static void
init_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[n] = c;
    }
    for (int c = 0; c < 128; c++) {
        word_byte[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ? (unsigned char)c
                       : c >= 'A' && c <= 'Z'                            ? (unsigned char)(c + 32)
                                                                         : 0;
    }
}

#define CRC_BYTE(crc, b) (crc_table[((crc) ^ (b)) & 0xFF] ^ ((crc) >> 8))

/* hash((a, b, c, d)) for ints below 2**61 - 1, as CPython 3.8+ computes it on 64 bits. */
static Py_hash_t
tuple_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    const uint64_t prime1 = 11400714785074694791ull, prime2 = 14029467366897019727ull;
    const uint64_t prime5 = 2870177450012600261ull;
    const uint64_t lanes[4] = {a, b, c, d};
    uint64_t acc = prime5;
    for (int i = 0; i < 4; i++) {
        acc += lanes[i] * prime2;
        acc = (acc << 31) | (acc >> 33);
        acc *= prime1;
    }
    acc += 4 ^ (prime5 ^ 3527539ull);
    return acc == UINT64_MAX ? 1546275796 : (Py_hash_t)acc;
}

/* The word numbers of a text, in order: on the stack while few. */
typedef struct {
    uint32_t *ids;
    Py_ssize_t count, capacity;
    uint32_t few[512];
} Words;

static int
words_add(Words *w, uint32_t id)
{
    if (w->count == w->capacity) {
        if (w->capacity > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(uint32_t)) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t wanted = w->capacity * 2;
        uint32_t *grown = w->ids == w->few ? PyMem_Malloc((size_t)wanted * sizeof(uint32_t))
                                           : PyMem_Realloc(w->ids, (size_t)wanted * sizeof(uint32_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (w->ids == w->few) {
            memcpy(grown, w->few, sizeof(w->few));
        }
        w->ids = grown;
        w->capacity = wanted;
    }
    w->ids[w->count++] = id;
    return 0;
}

static void
words_free(Words *w)
{
    if (w->ids != w->few) {
        PyMem_Free(w->ids);
    }
}

typedef struct {
    PyObject_HEAD
    PyObject *make;  /* (shingles, signature) -> a Fingerprint */
    Py_UCS4 *marks;  /* non-ASCII characters taken as spaces (cluster._TYPOGRAPHY) */
    Py_ssize_t mark_count;
    unsigned char probes[BINS][BINS];  /* cluster._PROBES: each a permutation of the bins */
} Fingerprinter;

/* Number the words of ``text`` (of ``kind``), read as ASCII with the separators as
 * spaces: 0, or 1 when it holds any other character (Python reads it otherwise), or -1
 * with an exception set. -O3 takes the kind switch out of the loop. */
static int
split_plain(const Fingerprinter *self, Words *w, int kind, const void *data, Py_ssize_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    int in_word = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        unsigned char c = 0;
        if (ch < 128) {
            c = word_byte[ch];
        }
        else {
            Py_ssize_t m = 0;
            while (m < self->mark_count && self->marks[m] != ch) {
                m++;
            }
            if (m == self->mark_count) {
                return 1;
            }
        }
        if (c) {
            crc = CRC_BYTE(crc, c);
            in_word = 1;
        }
        else if (in_word) {
            if (words_add(w, ~crc) < 0) {
                return -1;
            }
            crc = 0xFFFFFFFFu;
            in_word = 0;
        }
    }
    return in_word ? words_add(w, ~crc) : 0;
}

/* ``crc`` advanced over the UTF-8 bytes of ``ch`` (never a surrogate: see is_word). */
static uint32_t
crc_utf8(uint32_t crc, Py_UCS4 ch)
{
    if (ch < 0x80) {
        return CRC_BYTE(crc, ch);
    }
    if (ch < 0x800) {
        crc = CRC_BYTE(crc, 0xC0 | (ch >> 6));
    }
    else {
        if (ch < 0x10000) {
            crc = CRC_BYTE(crc, 0xE0 | (ch >> 12));
        }
        else {
            crc = CRC_BYTE(crc, 0xF0 | (ch >> 18));
            crc = CRC_BYTE(crc, 0x80 | ((ch >> 12) & 0x3F));
        }
        crc = CRC_BYTE(crc, 0x80 | ((ch >> 6) & 0x3F));
    }
    return CRC_BYTE(crc, 0x80 | (ch & 0x3F));
}

/* _WORD's first branch: a character of these ranges is a word of its own, whatever its
 * category (the ranges hold a few marks and unassigned code points too). */
static int
is_cjk(Py_UCS4 ch)
{
    return (ch >= 0x3040 && ch <= 0x30FF) || (ch >= 0x3400 && ch <= 0x4DBF)
           || (ch >= 0x4E00 && ch <= 0x9FFF) || (ch >= 0xAC00 && ch <= 0xD7AF);
}

/* ``[^\W_]``: the re module's word characters (Py_UNICODE_ISALNUM or '_') but '_'. No
 * surrogate is alphanumeric, so a word always encodes to UTF-8. */
static int
is_word(Py_UCS4 ch)
{
    return ch < 128 ? word_byte[ch] != 0 : Py_UNICODE_ISALNUM(ch);
}

/* Number the words of ``text`` as _WORD.findall finds them in Python's form: separators
 * made spaces, then str.lower. 0, or -1 with an exception set. */
static int
split_unicode(const Fingerprinter *self, Words *w, PyObject *text)
{
    PyObject *space = PyUnicode_FromOrdinal(' ');
    if (space == NULL) {
        return -1;
    }
    Py_INCREF(text);
    for (Py_ssize_t m = 0; text != NULL && m < self->mark_count; m++) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(text);
        Py_ssize_t at = PyUnicode_FindChar(text, self->marks[m], 0, n, 1);
        if (at == -2) {
            Py_CLEAR(text);
        }
        else if (at >= 0) {
            PyObject *mark = PyUnicode_FromOrdinal((int)self->marks[m]);
            PyObject *spaced = mark == NULL ? NULL : PyUnicode_Replace(text, mark, space, -1);
            Py_XDECREF(mark);
            Py_SETREF(text, spaced);
        }
    }
    Py_DECREF(space);
    if (text == NULL) {
        return -1;
    }
    /* str's own lower() (full case mapping, final sigma), as the Python form calls it. */
    PyObject *lowered = PyObject_CallMethod((PyObject *)&PyUnicode_Type, "lower", "O", text);
    Py_DECREF(text);
    if (lowered == NULL) {
        return -1;
    }
    int kind = PyUnicode_KIND(lowered);
    const void *data = PyUnicode_DATA(lowered);
    Py_ssize_t n = PyUnicode_GET_LENGTH(lowered), i = 0;
    int failed = 0;
    while (!failed && i < n) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i++);
        if (is_cjk(ch)) {
            failed = words_add(w, ~crc_utf8(0xFFFFFFFFu, ch)) < 0;
        }
        else if (is_word(ch)) {
            uint32_t crc = crc_utf8(0xFFFFFFFFu, ch);
            while (i < n && is_word(ch = PyUnicode_READ(kind, data, i))) {
                crc = crc_utf8(crc, ch);
                i++;
            }
            failed = words_add(w, ~crc) < 0;
        }
    }
    Py_DECREF(lowered);
    return failed ? -1 : 0;
}

/* Number the words of ``text`` into ``w`` (which the caller frees): 0, or -1 with an
 * exception set. */
static int
split(const Fingerprinter *self, Words *w, PyObject *text)
{
    w->ids = w->few;
    w->count = 0;
    w->capacity = sizeof(w->few) / sizeof(w->few[0]);
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "text must be a str, not %.200s", Py_TYPE(text)->tp_name);
        return -1;
    }
    if (PyUnicode_READY(text) < 0) {
        return -1;
    }
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text)) {  /* most news, once typography is set apart */
        return split_plain(self, w, PyUnicode_1BYTE_KIND, data, n);
    }
    int done = split_plain(self, w, PyUnicode_KIND(text), data, n);
    if (done == 1) {
        w->count = 0;
        done = split_unicode(self, w, text);
    }
    return done;
}

/* The distinct shingle hashes of numbered words: an open-addressing set, on the stack
 * while small; EMPTY marks a free slot, since a tuple's hash is never -1. */
#define EMPTY (-1)

typedef struct {
    Py_hash_t *slots;
    size_t size;
    Py_ssize_t distinct;
    Py_hash_t few[1024];
} Shingles;

/* Fill ``s`` (which the caller frees) from ``n`` word numbers; 0, or -1 on no memory. */
static int
hash_shingles(Shingles *s, const uint32_t *ids, Py_ssize_t n)
{
    Py_ssize_t m = n < SHINGLE_WORDS ? 0 : n - SHINGLE_WORDS + 1;  /* counting repeats */
    s->slots = s->few;
    s->distinct = 0;
    s->size = 64;
    int shift = 58;  /* a slot is the top bits of a Fibonacci hash */
    if (m > PY_SSIZE_T_MAX / 4 / (Py_ssize_t)sizeof(Py_hash_t)) {
        PyErr_NoMemory();
        return -1;
    }
    while (s->size < (size_t)m * 2) {  /* at most half full */
        s->size *= 2;
        shift--;
    }
    if (s->size > sizeof(s->few) / sizeof(s->few[0])) {
        s->slots = PyMem_Malloc(s->size * sizeof(Py_hash_t));
        if (s->slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    memset(s->slots, 0xFF, s->size * sizeof(Py_hash_t));  /* all EMPTY */
    for (Py_ssize_t i = 0; i < m; i++) {
        Py_hash_t h = tuple_hash4(ids[i], ids[i + 1], ids[i + 2], ids[i + 3]);
        size_t slot = (size_t)(((uint64_t)h * 0x9E3779B97F4A7C15ull) >> shift);
        while (s->slots[slot] != EMPTY && s->slots[slot] != h) {
            slot = (slot + 1) & (s->size - 1);
        }
        if (s->slots[slot] == EMPTY) {
            s->slots[slot] = h;
            s->distinct++;
        }
    }
    return 0;
}

static void
shingles_free(Shingles *s)
{
    if (s->slots != s->few) {
        PyMem_Free(s->slots);
    }
}

/* The Fingerprint of a text's shingles (at least MIN_SHINGLES of them). */
static PyObject *
sign(const Fingerprinter *self, const Shingles *s)
{
    Py_hash_t least[BINS];
    unsigned char filled[BINS] = {0};
    for (size_t i = 0; i < s->size; i++) {
        Py_hash_t h = s->slots[i];
        if (h == EMPTY) {
            continue;
        }
        int bin = (int)(h % BINS);  /* Python's modulo: never negative */
        bin += bin < 0 ? BINS : 0;
        if (!filled[bin] || h < least[bin]) {
            least[bin] = h;
            filled[bin] = 1;
        }
    }
    PyObject *signature = PyBytes_FromStringAndSize(NULL, SIGNATURE_BYTES);
    if (signature == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(signature);
    for (int b = 0; b < BINS; b++) {
        int from = b;  /* an empty bin borrows from the first filled bin on its probe path */
        for (int p = 0; !filled[from]; p++) {
            from = self->probes[b][p];
        }
        Py_hash_t h = least[from];
        Py_hash_t q = h / BINS - (h % BINS < 0);  /* Python's floor division */
        uint32_t v = (uint32_t)(uint64_t)q;      /* & 0xFFFFFFFF, two's complement */
        for (int k = 0; k < 4; k++) {            /* '<I' */
            out[b * 4 + k] = (unsigned char)(v >> (8 * k));
        }
    }
    PyObject *count = PyLong_FromSsize_t(s->distinct);
    if (count == NULL) {
        Py_DECREF(signature);
        return NULL;
    }
    PyObject *args[2] = {count, signature};
    PyObject *made = PyObject_Vectorcall(self->make, args, 2, NULL);
    Py_DECREF(count);
    Py_DECREF(signature);
    return made;
}

PyDoc_STRVAR(fingerprint_doc,
"fingerprint(text, /)\n--\n\n"
"The text's Fingerprint, or None when it has too few shingles: cluster.fingerprint_python.");

static PyObject *
fingerprinter_fingerprint(Fingerprinter *self, PyObject *text)
{
    Words w;  /* ``few`` is left unset: most texts fill a fraction of it */
    Shingles s;
    PyObject *result = NULL;
    if (split(self, &w, text) < 0) {
        goto done;
    }
    if (w.count - SHINGLE_WORDS + 1 < MIN_SHINGLES) {  /* fewer, even if all distinct */
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (hash_shingles(&s, w.ids, w.count) < 0) {
        goto done;
    }
    result = s.distinct < MIN_SHINGLES ? Py_NewRef(Py_None) : sign(self, &s);
    shingles_free(&s);

done:
    words_free(&w);
    return result;
}

PyDoc_STRVAR(shingles_doc,
"shingles(text, /)\n--\n\n"
"The hashes of the text's shingles: cluster.shingles_python.");

static PyObject *
fingerprinter_shingles(Fingerprinter *self, PyObject *text)
{
    Words w;
    Shingles s;
    PyObject *result = NULL;
    if (split(self, &w, text) < 0) {
        goto done;
    }
    if (hash_shingles(&s, w.ids, w.count) < 0) {
        goto done;
    }
    result = PySet_New(NULL);
    for (size_t i = 0; result != NULL && i < s.size; i++) {
        if (s.slots[i] != EMPTY) {
            PyObject *h = PyLong_FromSsize_t(s.slots[i]);
            if (h == NULL || PySet_Add(result, h) < 0) {
                Py_CLEAR(result);
            }
            Py_XDECREF(h);
        }
    }
    shingles_free(&s);

done:
    words_free(&w);
    return result;
}

static PyObject *
fingerprinter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *separators, *make;
    Py_buffer probes;
    static char *names[] = {"separators", "probes", "make", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Uy*O:Fingerprinter", names, &separators,
                                     &probes, &make)) {
        return NULL;
    }
    Fingerprinter *self = NULL;
    if (!PyCallable_Check(make)) {
        PyErr_SetString(PyExc_TypeError, "make must be callable");
        goto done;
    }
    if (probes.len != BINS * BINS) {
        PyErr_Format(PyExc_ValueError, "probes must be %d bytes", BINS * BINS);
        goto done;
    }
    const unsigned char *p = probes.buf;
    for (int b = 0; b < BINS; b++) {  /* a permutation: every probe path meets a filled bin */
        unsigned char met[BINS] = {0};
        for (int i = 0; i < BINS; i++) {
            unsigned char to = p[b * BINS + i];
            if (to >= BINS || met[to]) {
                PyErr_SetString(PyExc_ValueError,
                                "each probe path must be a permutation of the bins");
                goto done;
            }
            met[to] = 1;
        }
    }
    Py_ssize_t count = PyUnicode_GET_LENGTH(separators);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyUnicode_READ_CHAR(separators, i) < 128) {  /* ASCII is split by word_byte */
            PyErr_SetString(PyExc_ValueError, "separators must not be ASCII");
            goto done;
        }
    }
    self = (Fingerprinter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        goto done;
    }
    self->marks = PyUnicode_AsUCS4Copy(separators);
    if (self->marks == NULL) {
        Py_CLEAR(self);
        goto done;
    }
    self->mark_count = count;
    memcpy(self->probes, p, BINS * BINS);
    self->make = Py_NewRef(make);

done:
    PyBuffer_Release(&probes);
    return (PyObject *)self;
}

static int
fingerprinter_traverse(Fingerprinter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->make);
    return 0;
}

static int
fingerprinter_clear(Fingerprinter *self)
{
    Py_CLEAR(self->make);
    return 0;
}

static void
fingerprinter_dealloc(Fingerprinter *self)
{
    PyObject_GC_UnTrack(self);
    fingerprinter_clear(self);
    PyMem_Free(self->marks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef fingerprinter_methods[] = {
    {"fingerprint", (PyCFunction)fingerprinter_fingerprint, METH_O, fingerprint_doc},
    {"shingles", (PyCFunction)fingerprinter_shingles, METH_O, shingles_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FingerprinterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor._fingerprint.Fingerprinter",
    .tp_basicsize = sizeof(Fingerprinter),
    .tp_dealloc = (destructor)fingerprinter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR(
        "Fingerprinter(separators, probes, make)\n--\n\n"
        "cluster's shingles and fingerprint with their tables: the typographic separators,\n"
        "the probe paths (BINS x BINS bytes) and the Fingerprint type."),
    .tp_traverse = (traverseproc)fingerprinter_traverse,
    .tp_clear = (inquiry)fingerprinter_clear,
    .tp_methods = fingerprinter_methods,
    .tp_new = fingerprinter_new,
};

/* ``print_.name``, a new reference; NULL with TypeError when ``print_`` has none. */
static PyObject *
fingerprint_field(PyObject *print_, const char *name)
{
    PyObject *value = PyObject_GetAttrString(print_, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Format(PyExc_TypeError, "expected a Fingerprint, not %.200s",
                     Py_TYPE(print_)->tp_name);
    }
    return value;
}

/* The 126 values of ``print_.signature``; 0, or -1 with an exception set. */
static int
signature_values(PyObject *print_, uint32_t values[BINS])
{
    PyObject *signature = fingerprint_field(print_, "signature");
    if (signature == NULL) {
        return -1;
    }
    Py_buffer view;
    int failed = PyObject_GetBuffer(signature, &view, PyBUF_SIMPLE);
    Py_DECREF(signature);
    if (failed) {
        return -1;
    }
    if (view.len != SIGNATURE_BYTES) {
        PyErr_Format(PyExc_ValueError, "a signature is %d bytes, not %zd", SIGNATURE_BYTES,
                     view.len);
        PyBuffer_Release(&view);
        return -1;
    }
    const unsigned char *b = view.buf;
    for (int i = 0; i < BINS; i++) {
        values[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8
                    | (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
    }
    PyBuffer_Release(&view);
    return 0;
}

PyDoc_STRVAR(bands_doc,
"bands(print_, /)\n--\n\n"
"LSH keys, one per band: cluster.bands, which this is the compiled form of.");

static PyObject *
bands(PyObject *Py_UNUSED(module), PyObject *print_)
{
    uint32_t v[BINS];
    if (signature_values(print_, v) < 0) {
        return NULL;
    }
    PyObject *keys = PyList_New(BANDS);
    for (int b = 0; keys != NULL && b < BANDS; b++) {
        uint64_t h = (uint64_t)tuple_hash4(b, v[b * ROWS], v[b * ROWS + 1], v[b * ROWS + 2]);
        PyObject *key = PyLong_FromLong((int32_t)(h >> 32)); /* Python's h >> 32 */
        if (key == NULL) {
            Py_CLEAR(keys);
            break;
        }
        PyList_SET_ITEM(keys, b, key);
    }
    return keys;
}

/* ``print_.shingles`` as a C integer; -1 with an exception set when it is none. */
static int
shingles_of(PyObject *print_, long long *shingles)
{
    PyObject *count = fingerprint_field(print_, "shingles");
    if (count == NULL) {
        return -1;
    }
    if (!PyLong_Check(count)) {
        PyErr_SetString(PyExc_TypeError, "a Fingerprint's shingles must be an int");
        Py_DECREF(count);
        return -1;
    }
    *shingles = PyLong_AsLongLong(count);
    Py_DECREF(count);
    return *shingles == -1 && PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(containment_doc,
"containment(a, b, /)\n--\n\n"
"Estimated share of the smaller text's shingles found in the larger one: cluster.containment.");

static PyObject *
containment(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "containment takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    uint32_t va[BINS], vb[BINS];
    long long sa, sb;
    if (shingles_of(args[0], &sa) < 0 || shingles_of(args[1], &sb) < 0
        || signature_values(args[0], va) < 0 || signature_values(args[1], vb) < 0) {
        return NULL;
    }
    if ((sb > 0 && sa > LLONG_MAX - sb) || (sb < 0 && sa < LLONG_MIN - sb)) {
        PyErr_SetString(PyExc_OverflowError, "shingle counts too large");
        return NULL;
    }
    int agree = 0;
    for (int i = 0; i < BINS; i++) {
        agree += va[i] == vb[i];
    }
    /* The same operations, in the same order, as the Python form, so the same double. */
    double jaccard = (double)agree / BINS;
    double common = jaccard * (double)(sa + sb) / (1 + jaccard);
    double smaller = (double)(sa < sb ? sa : sb);
    if (smaller == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    double share = common / smaller;
    return PyFloat_FromDouble(share < 1.0 ? share : 1.0);
}

/* band_filter's map: a key's bit is its low bits, key & mask, of the key read modulo
   2**64 as Python's & reads it (two's complement), so any int gives the Python form's bit.
   Returns the bit, or -1 with an exception set. */
static int64_t
key_bit(PyObject *key, uint64_t mask)
{
    uint64_t k = PyLong_AsUnsignedLongLongMask(key);
    if (k == (uint64_t)-1 && PyErr_Occurred()) {
        return -1;
    }
    return (int64_t)(k & mask);
}

/* The map's bytes and mask from (bits, mask, ...): the mask must name bits inside them. */
static int
map_args(PyObject *const *args, Py_ssize_t nargs, const char *name, int flags, Py_buffer *view,
         uint64_t *mask)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes 3 arguments (%zd given)", name, nargs);
        return -1;
    }
    *mask = PyLong_AsUnsignedLongLong(args[1]);
    if (*mask == (uint64_t)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (*mask >= ((uint64_t)1 << 62)) {
        PyErr_SetString(PyExc_ValueError, "mask too large");
        return -1;
    }
    if (PyObject_GetBuffer(args[0], view, flags) < 0) {
        return -1;
    }
    if ((*mask >> 3) >= (uint64_t)view->len) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "mask names bits past the map");
        return -1;
    }
    return 0;
}

/* The keys of args[2] over the map (args[0], args[1]): each one's bit set when found is
   NULL, else each one whose bit is set appended to found. Returns how many keys there
   were, or -1 with an exception set. */
static Py_ssize_t
walk(PyObject *const *args, Py_ssize_t nargs, const char *name, PyObject *found)
{
    Py_buffer view;
    uint64_t mask;
    int flags = found == NULL ? PyBUF_WRITABLE : PyBUF_SIMPLE;
    if (map_args(args, nargs, name, flags, &view, &mask) < 0) {
        return -1;
    }
    unsigned char *bits = view.buf;
    Py_ssize_t count = 0;
    PyObject *it = PyObject_GetIter(args[2]);
    PyObject *key;
    while (it != NULL && (key = PyIter_Next(it)) != NULL) {
        int64_t bit = key_bit(key, mask);
        int failed = bit < 0;
        if (!failed && found == NULL) {
            bits[bit >> 3] |= (unsigned char)(1u << (bit & 7));
        }
        else if (!failed && (bits[bit >> 3] >> (bit & 7) & 1)) {
            failed = PyList_Append(found, key) < 0;
        }
        Py_DECREF(key);
        if (failed) {
            break;
        }
        count++;
    }
    Py_XDECREF(it);
    PyBuffer_Release(&view);
    return PyErr_Occurred() ? -1 : count;
}

PyDoc_STRVAR(mark_doc,
"mark(bits, mask, keys, /)\n--\n\n"
"Set each key's bit (key & mask) in the writable buffer bits; returns how many keys\n"
"there were: band_filter's mark_python, compiled.");

static PyObject *
mark(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t count = walk(args, nargs, "mark", NULL);
    return count < 0 ? NULL : PyLong_FromSsize_t(count);
}

PyDoc_STRVAR(marked_doc,
"marked(bits, mask, keys, /)\n--\n\n"
"The keys whose bit (key & mask) is set in bits, in order: band_filter's\n"
"marked_python, compiled.");

static PyObject *
marked(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *found = PyList_New(0);
    if (found != NULL && walk(args, nargs, "marked", found) < 0) {
        Py_CLEAR(found);
    }
    return found;
}

static PyMethodDef methods[] = {
    {"bands", (PyCFunction)bands, METH_O, bands_doc},
    {"mark", (PyCFunction)(void (*)(void))mark, METH_FASTCALL, mark_doc},
    {"marked", (PyCFunction)(void (*)(void))marked, METH_FASTCALL, marked_doc},
    {"containment", (PyCFunction)(void (*)(void))containment, METH_FASTCALL, containment_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "monitor._fingerprint",
    .m_doc = "Story fingerprints, compiled: see monitor/cluster.py.",
    .m_size = 0,
    .m_methods = methods,
};

/* Whether tuple_hash4 is this interpreter's hash of 4-tuples of ints: 1, 0, or -1. */
static int
same_tuple_hash(void)
{
    static const uint32_t samples[][4] = {
        {0, 0, 0, 0}, {1, 2, 3, 4}, {41, 0xFFFFFFFFu, 0x80000000u, 7},
        {0xDEADBEEFu, 0x12345678u, 0xCAFEBABEu, 0x0BADF00Du},
    };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const uint32_t *s = samples[i];
        PyObject *tuple = Py_BuildValue("(kkkk)", (unsigned long)s[0], (unsigned long)s[1],
                                        (unsigned long)s[2], (unsigned long)s[3]);
        if (tuple == NULL) {
            return -1;
        }
        Py_hash_t theirs = PyObject_Hash(tuple);
        Py_DECREF(tuple);
        if (theirs == -1) {
            return -1;
        }
        if (theirs != tuple_hash4(s[0], s[1], s[2], s[3])) {
            return 0;
        }
    }
    return 1;
}

PyMODINIT_FUNC
PyInit__fingerprint(void)
{
    init_tables();
    int same = same_tuple_hash();
    if (same <= 0) {
        if (same == 0) {
            PyErr_SetString(PyExc_ImportError,
                            "this interpreter hashes tuples otherwise than CPython 3.8-3.13 on "
                            "64 bits: stored fingerprints need the pure-Python form");
        }
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddType(m, &FingerprinterType) < 0) {  /* readies the type; Python 3.10+ */
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "BINS", BINS) < 0
        || PyModule_AddIntConstant(m, "ROWS", ROWS) < 0
        || PyModule_AddIntConstant(m, "SHINGLE_WORDS", SHINGLE_WORDS) < 0
        || PyModule_AddIntConstant(m, "MIN_SHINGLES", MIN_SHINGLES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
