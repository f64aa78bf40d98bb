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

/* A set of small ints (key set or rule numbers) as bits. */
typedef struct {
    unsigned char *bits;
    Py_ssize_t size;
} Bits;

static int
bits_init(Bits *b, Py_ssize_t size)
{
    b->size = size;
    b->bits = PyMem_Calloc((size_t)size / 8 + 1, 1);
    if (b->bits == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

#define HAS(b, n) ((b).bits[(n) >> 3] & (1u << ((n) & 7)))
#define ADD(b, n) ((b).bits[(n) >> 3] |= (unsigned char)(1u << ((n) & 7)))

/* The number ``item`` holds, checked to be in [0, size); -1 with an exception set. */
static Py_ssize_t
number(PyObject *item, Py_ssize_t size)
{
    Py_ssize_t n = PyLong_AsSsize_t(item);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (n < 0 || n >= size) {
        PyErr_Format(PyExc_IndexError, "number %zd out of range", n);
        return -1;
    }
    return n;
}

/* The key sets a document meets, as bits and in the order met (new references). */
typedef struct {
    Bits bits;
    PyObject **order;
    Py_ssize_t count;
} Met;

/* Add each key set number of ``sets`` (a tuple or list of ints; None adds nothing). */
static int
meet(Met *met, PyObject *sets)
{
    if (sets == NULL || sets == Py_None) {
        return 0;
    }
    PyObject *fast = PySequence_Fast(sets, "key sets must be a sequence of ints");
    if (fast == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        Py_ssize_t n = number(item, met->bits.size);
        if (n < 0) {
            Py_DECREF(fast);
            return -1;
        }
        if (!HAS(met->bits, n)) {
            ADD(met->bits, n);
            Py_INCREF(item);
            met->order[met->count++] = item;  /* at most size: each number once */
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* ``mapping[key]``, borrowed, or NULL: with an exception set only on error. */
static PyObject *
lookup(PyObject *mapping, PyObject *key)
{
    return PyDict_GetItemWithError(mapping, key);
}

PyDoc_STRVAR(gather_doc,
"gather(present, word_sets, pair_sets, fields, needs, by_need, sets, /)\n--\n\n"
"The rules whose needs are all met, in order, and the key sets met: see\n"
"index.gather, which this is the compiled form of.");

static PyObject *
gather(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "gather takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *present = args[0], *word_sets = args[1], *pair_sets = args[2];
    PyObject *needs = args[4], *by_need = args[5];
    if (!PyDict_Check(word_sets) || !PyDict_Check(pair_sets) || !PyDict_Check(by_need)) {
        PyErr_SetString(PyExc_TypeError, "word_sets, pair_sets and by_need must be dicts");
        return NULL;
    }
    if (!PyList_Check(needs)) {
        PyErr_SetString(PyExc_TypeError, "needs must be a list");
        return NULL;
    }
    Py_ssize_t sets = PyLong_AsSsize_t(args[6]);
    if (sets == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (sets < 0) {
        PyErr_SetString(PyExc_ValueError, "sets must not be negative");
        return NULL;
    }
    Met met = {{NULL, 0}, NULL, 0};
    Bits ready = {NULL, 0};
    PyObject *words = NULL, *fields = NULL, *found = NULL, *met_list = NULL;
    PyObject *result = NULL;
    if (bits_init(&met.bits, sets) < 0) {
        goto done;
    }
    met.order = PyMem_Calloc((size_t)sets + 1, sizeof(PyObject *));
    if (met.order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The key sets of the document's distinct words. */
    words = PyObject_GetIter(present);
    if (words == NULL) {
        goto done;
    }
    PyObject *word;
    while ((word = PyIter_Next(words)) != NULL) {
        PyObject *sets_of = lookup(word_sets, word);
        int failed = sets_of == NULL ? PyErr_Occurred() != NULL : meet(&met, sets_of) < 0;
        Py_DECREF(word);
        if (failed) {
            goto done;
        }
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    /* Those of its neighbouring words, field by field. */
    fields = PySequence_Fast(args[3], "fields must be a sequence of lists");
    if (fields == NULL) {
        goto done;
    }
    for (Py_ssize_t f = 0; f < PySequence_Fast_GET_SIZE(fields); f++) {
        PyObject *keys = PySequence_Fast_GET_ITEM(fields, f);
        if (!PyList_Check(keys)) {
            PyErr_SetString(PyExc_TypeError, "fields must be a sequence of lists");
            goto done;
        }
        Py_INCREF(keys);
        int failed = 0;
        for (Py_ssize_t i = 0; !failed && i + 1 < PyList_GET_SIZE(keys); i++) {
            PyObject *pair = PyTuple_Pack(2, PyList_GET_ITEM(keys, i), PyList_GET_ITEM(keys, i + 1));
            if (pair == NULL) {
                failed = 1;
                break;
            }
            PyObject *sets_of = lookup(pair_sets, pair);
            failed = sets_of == NULL ? PyErr_Occurred() != NULL : meet(&met, sets_of) < 0;
            Py_DECREF(pair);
        }
        Py_DECREF(keys);
        if (failed) {
            goto done;
        }
    }
    /* The rules filed under a need met, kept when every need of theirs is met. */
    if (bits_init(&ready, PyList_GET_SIZE(needs)) < 0) {
        goto done;
    }
    for (Py_ssize_t m = 0; m < met.count; m++) {
        PyObject *rules = lookup(by_need, met.order[m]);
        if (rules == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            continue;
        }
        found = PySequence_Fast(rules, "by_need must hold sequences of ints");
        if (found == NULL) {
            goto done;
        }
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(found); k++) {
            Py_ssize_t rule = number(PySequence_Fast_GET_ITEM(found, k), ready.size);
            if (rule < 0 || rule >= PyList_GET_SIZE(needs)) {  /* needs may have shrunk */
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_IndexError, "rule number out of range");
                }
                goto done;
            }
            PyObject *wanted = PySequence_Fast(PyList_GET_ITEM(needs, rule),
                                               "needs must hold sequences of ints");
            if (wanted == NULL) {
                goto done;
            }
            int all = 1;
            for (Py_ssize_t j = 0; all && j < PySequence_Fast_GET_SIZE(wanted); j++) {
                Py_ssize_t n = number(PySequence_Fast_GET_ITEM(wanted, j), sets);
                if (n < 0) {
                    Py_DECREF(wanted);
                    goto done;
                }
                all = HAS(met.bits, n) != 0;
            }
            Py_DECREF(wanted);
            if (all) {
                ADD(ready, rule);
            }
        }
        Py_CLEAR(found);
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t rule = 0; rule < ready.size; rule++) {
        if (!ready.bits[rule >> 3]) {  /* a byte of rules, none ready */
            rule |= 7;
            continue;
        }
        if (HAS(ready, rule) && append_new(out, PyLong_FromSsize_t(rule)) < 0) {
            Py_DECREF(out);
            goto done;
        }
    }
    met_list = PyList_New(met.count);
    if (met_list == NULL) {
        Py_DECREF(out);
        goto done;
    }
    for (Py_ssize_t m = 0; m < met.count; m++) {
        PyList_SET_ITEM(met_list, m, met.order[m]);  /* the reference moves to the list */
    }
    met.count = 0;
    result = Py_BuildValue("(NN)", out, met_list);

done:
    Py_XDECREF(words);
    Py_XDECREF(fields);
    Py_XDECREF(found);
    for (Py_ssize_t m = 0; m < met.count; m++) {
        Py_DECREF(met.order[m]);
    }
    PyMem_Free(met.order);
    PyMem_Free(met.bits.bits);
    PyMem_Free(ready.bits);
    return result;
}

static PyMethodDef methods[] = {
    {"split_plain", (PyCFunction)(void (*)(void))split_plain, METH_FASTCALL, split_plain_doc},
    {"place", (PyCFunction)(void (*)(void))place, METH_FASTCALL, place_doc},
    {"gather", (PyCFunction)(void (*)(void))gather, METH_FASTCALL, gather_doc},
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
