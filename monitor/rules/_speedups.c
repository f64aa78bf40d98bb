/* The matcher's per-word hot path in C: the ASCII split and the word index.
 *
 * Built at install when a C compiler is there (setup.py: an optional extension);
 * monitor/rules/native.py loads it, and the pure-Python code in normalize.py and plan.py
 * does the same work where it is not built. tests/test_rules_native.py proves the two
 * give identical results. Only the CPython C API is used, no other library.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Character classes of normalize._ASCII_TOKEN. FOLLOW: what may come after a sentence end
 * ("[\t\n\x0b\x0c\r \"')\]]"). */
enum { ALPHA = 1, DIGIT = 2, STOP = 4, FOLLOW = 8 };
static unsigned char kinds[128];

#define IS(c, kind) (kinds[(c)] & (kind))
#define ALNUM (ALPHA | DIGIT)

static void
init_kinds(void)
{
    for (int c = 'a'; c <= 'z'; c++) {
        kinds[c] = ALPHA;
        kinds[c - 'a' + 'A'] = ALPHA;
    }
    for (int c = '0'; c <= '9'; c++) {
        kinds[c] = DIGIT;
    }
    kinds['.'] = kinds['!'] = kinds['?'] = STOP;
    const char *follow = "\t\n\x0b\x0c\r \"')]";
    for (const char *p = follow; *p; p++) {
        kinds[(unsigned char)*p] |= FOLLOW;
    }
}

/* End of the dotted acronym starting at letter s[pos] ("U.S.", "U.S", "e.g."), with its
 * possessive, or -1. The pattern's first branch:
 *   [A-Za-z]\.(?:(?:[A-Za-z]\.)+(?![A-Za-z])|(?:[A-Za-z]\.)*[A-Za-z](?![A-Za-z0-9.]))
 *   (?:'s(?![A-Za-z0-9]))?
 * Neither alternative can succeed with fewer "X." pairs than the most there are: one
 * fewer leaves a letter next, which both lookaheads refuse. The text is matched as
 * lower-cased, so "'S" is a possessive too. */
static Py_ssize_t
acronym_end(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t pos)
{
    if (pos + 1 >= n || s[pos + 1] != '.') {
        return -1;
    }
    Py_ssize_t j = pos + 2, pairs = 0;
    while (j + 1 < n && IS(s[j], ALPHA) && s[j + 1] == '.') {
        j += 2;
        pairs++;
    }
    Py_ssize_t end;
    if (pairs > 0 && (j >= n || !IS(s[j], ALPHA))) {
        end = j;
    }
    else if (j < n && IS(s[j], ALPHA)
             && (j + 1 >= n || !(IS(s[j + 1], ALNUM) || s[j + 1] == '.'))) {
        end = j + 1;
    }
    else {
        return -1;
    }
    if (end + 1 < n && s[end] == '\'' && (s[end + 1] | 0x20) == 's'
        && (end + 2 >= n || !IS(s[end + 2], ALNUM))) {
        end += 2;
    }
    return end;
}

/* End of the word starting at s[pos], a letter or digit: [A-Za-z0-9]+(?:'[A-Za-z0-9]+)* */
static Py_ssize_t
word_end(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t pos)
{
    Py_ssize_t j = pos + 1;
    for (;;) {
        while (j < n && IS(s[j], ALNUM)) {
            j++;
        }
        if (j + 1 < n && s[j] == '\'' && IS(s[j + 1], ALNUM)) {
            j += 2;
        }
        else {
            return j;
        }
    }
}

/* s[start:end] lower-cased, as a new str; *plain is set when it is letters and digits
 * only (a word that is its own folded key). */
static PyObject *
lowered(const Py_UCS1 *s, Py_ssize_t start, Py_ssize_t end, int *plain)
{
    Py_ssize_t len = end - start;
    int alnum = 1;
    PyObject *out;
    if (len == 1) {  /* CPython's one-character strings are shared */
        Py_UCS1 c = s[start];
        alnum = IS(c, ALNUM) != 0;
        out = PyUnicode_FromOrdinal(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    else {
        out = PyUnicode_New(len, 127);
        if (out != NULL) {
            Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
            for (Py_ssize_t i = 0; i < len; i++) {
                Py_UCS1 c = s[start + i];
                alnum &= IS(c, ALNUM) != 0;
                d[i] = c >= 'A' && c <= 'Z' ? c + 32 : c;
            }
        }
    }
    if (plain != NULL) {
        *plain = alnum && len > 0;
    }
    return out;
}

/* Append a new reference to ``list`` and drop it; 0, or -1 with an exception set. */
static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL) {
        return -1;
    }
    int failed = PyList_Append(list, item);
    Py_DECREF(item);
    return failed;
}

/* The spelling of a surface that is not a plain word: from ``cache``, else made by
 * ``spell`` and remembered. A new reference, or NULL with an exception set. */
static PyObject *
spelling_of(PyObject *surface, PyObject *cache, PyObject *spell)
{
    PyObject *spelled = PyDict_GetItemWithError(cache, surface);
    if (spelled != NULL) {
        Py_INCREF(spelled);
        return spelled;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    spelled = PyObject_CallOneArg(spell, surface);
    if (spelled != NULL && PyDict_SetItem(cache, surface, spelled) < 0) {
        Py_CLEAR(spelled);
    }
    return spelled;
}

/* Its first folded key (``spelled[2][0]``), borrowed; Py_None when it has none (a stop);
 * NULL with TypeError when it is no spelling. */
static PyObject *
first_key(PyObject *spelled)
{
    if (!PyTuple_Check(spelled) || PyTuple_GET_SIZE(spelled) < 3
        || !PyTuple_Check(PyTuple_GET_ITEM(spelled, 2))) {
        PyErr_SetString(PyExc_TypeError, "spell must give (pieces, length, keys) tuples");
        return NULL;
    }
    PyObject *keys = PyTuple_GET_ITEM(spelled, 2);
    return PyTuple_GET_SIZE(keys) ? PyTuple_GET_ITEM(keys, 0) : Py_None;
}

PyDoc_STRVAR(split_plain_doc,
"split_plain(text, cache, spell, stop, /)\n--\n\n"
"Split ASCII ``text`` as normalize._ASCII_TOKEN splits it lower-cased: (parts, spellings,\n"
"folded, stops). See normalize._split_plain, which this is the compiled form of.");

static PyObject *
split_plain(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "split_plain takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *text = args[0], *cache = args[1], *spell = args[2], *stop = args[3];
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    if (!PyDict_CheckExact(cache)) {
        PyErr_SetString(PyExc_TypeError, "cache must be a dict");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "text must be ASCII");
        return NULL;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *parts = PyList_New(0), *spellings = PyList_New(0);
    PyObject *folded = PyList_New(0), *stops = PyList_New(0);
    if (parts == NULL || spellings == NULL || folded == NULL || stops == NULL) {
        goto error;
    }
    Py_ssize_t pos = 0, last = 0, surfaces = 0;
    while (pos < n) {
        Py_UCS1 c = s[pos];
        Py_ssize_t end;
        if (c >= 128) {  /* cannot happen in ASCII text; kept so no read is out of bounds */
            pos++;
            continue;
        }
        if (IS(c, ALPHA) && (end = acronym_end(s, n, pos)) >= 0) {
            /* a dotted acronym */
        }
        else if (IS(c, ALNUM)) {
            end = word_end(s, n, pos);
        }
        else if (IS(c, STOP)) {
            /* [.!?]+ followed by a FOLLOW character or the end; else none of the run's
             * characters starts a token, as each would run to the same end. */
            end = pos + 1;
            while (end < n && IS(s[end], STOP)) {
                end++;
            }
            if (end < n && !IS(s[end], FOLLOW)) {
                pos = end;
                continue;
            }
        }
        else {
            pos++;
            continue;
        }
        int plain;
        if (append_new(parts, lowered(s, last, pos, NULL)) < 0) {
            goto error;
        }
        PyObject *surface = lowered(s, pos, end, &plain);
        if (surface == NULL) {
            goto error;
        }
        if (PyList_Append(parts, surface) < 0) {
            Py_DECREF(surface);
            goto error;
        }
        if (plain) {  /* its own folded key, with no spelling */
            if (PyList_Append(spellings, Py_None) < 0 || PyList_Append(folded, surface) < 0) {
                Py_DECREF(surface);
                goto error;
            }
        }
        else {
            PyObject *spelled = spelling_of(surface, cache, spell);
            PyObject *key = spelled == NULL ? NULL : first_key(spelled);
            int failed = key == NULL || PyList_Append(spellings, spelled) < 0;
            if (!failed && key != Py_None) {
                int truth = PyObject_IsTrue(key);  /* normalize keeps non-empty keys */
                failed = truth < 0 || (truth && PyList_Append(folded, key) < 0);
            }
            if (!failed && spelled == stop) {
                failed = append_new(stops, PyLong_FromSsize_t(surfaces)) < 0;
            }
            Py_XDECREF(spelled);
            if (failed) {
                Py_DECREF(surface);
                goto error;
            }
        }
        Py_DECREF(surface);
        surfaces++;
        last = pos = end;
    }
    if (append_new(parts, lowered(s, last, n, NULL)) < 0) {
        goto error;
    }
    return Py_BuildValue("(NNNN)", parts, spellings, folded, stops);

error:
    Py_XDECREF(parts);
    Py_XDECREF(spellings);
    Py_XDECREF(folded);
    Py_XDECREF(stops);
    return NULL;
}

PyDoc_STRVAR(place_doc,
"place(fields, stride, /)\n--\n\n"
"Each key's places, field * stride + position, in order: see plan.place.");

static PyObject *
place(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "place takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t stride = PyLong_AsSsize_t(args[1]);
    if (stride == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (stride < 0) {
        PyErr_SetString(PyExc_ValueError, "stride must not be negative");
        return NULL;
    }
    PyObject *fields = PySequence_Fast(args[0], "fields must be a sequence of lists");
    if (fields == NULL) {
        return NULL;
    }
    PyObject *where = PyDict_New();
    if (where == NULL) {
        goto error;
    }
    for (Py_ssize_t f = 0; f < PySequence_Fast_GET_SIZE(fields); f++) {
        PyObject *keys = PySequence_Fast_GET_ITEM(fields, f);
        if (!PyList_Check(keys)) {
            PyErr_SetString(PyExc_TypeError, "fields must be a sequence of lists");
            goto error;
        }
        Py_INCREF(keys);  /* a key's __eq__ could drop it from ``fields`` */
        /* A key's __eq__ may run Python code that changes the list: re-read its size. */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            PyObject *at = NULL;
            if (stride && f > (PY_SSIZE_T_MAX - i) / stride) {
                PyErr_SetString(PyExc_OverflowError, "place too large");
            }
            else {
                at = PyLong_FromSsize_t(f * stride + i);
            }
            if (at == NULL) {
                Py_DECREF(keys);
                goto error;
            }
            PyObject *key = PyList_GET_ITEM(keys, i);
            Py_INCREF(key);
            PyObject *found = PyDict_GetItemWithError(where, key);
            int failed;
            if (found != NULL) {
                failed = PyList_Append(found, at) < 0;
            }
            else if (PyErr_Occurred()) {
                failed = 1;
            }
            else {
                PyObject *list = PyList_New(1);
                failed = list == NULL;
                if (!failed) {
                    Py_INCREF(at);
                    PyList_SET_ITEM(list, 0, at);
                    failed = PyDict_SetItem(where, key, list) < 0;
                    Py_DECREF(list);
                }
            }
            Py_DECREF(key);
            Py_DECREF(at);
            if (failed) {
                Py_DECREF(keys);
                goto error;
            }
        }
        Py_DECREF(keys);
    }
    Py_DECREF(fields);
    return where;

error:
    Py_DECREF(fields);
    Py_XDECREF(where);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split_plain", (PyCFunction)(void (*)(void))split_plain, METH_FASTCALL, split_plain_doc},
    {"place", (PyCFunction)(void (*)(void))place, METH_FASTCALL, place_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "monitor.rules._speedups",
    .m_doc = "The matcher's per-word hot path, compiled: see monitor/rules/native.py.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_kinds();
    return PyModule_Create(&module);
}
