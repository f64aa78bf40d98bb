/* The matcher's hot paths in C: per word, the ASCII split (with each word's offsets), the
 * word index and the rules' candidates; per candidate rule, the evaluation of its plan
 * (the places of words, phrases, ORs and NEARs); per match, its terms, in order.
 *
 * Built at install when a C compiler is there (setup.py: an optional extension);
 * monitor/rules/native.py loads it, and the pure-Python code in normalize.py, plan.py,
 * snippet.py and index.py does the same work where it is not built. tests/test_rules_native.py proves the two
 * give identical results. Only the CPython C API is used, no other library.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>

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
    /* at most 20 letters, as normalize._TOKEN: tried from each letter, a longer chain
     * cost quadratic time */
    while (pairs < 19 && j + 1 < n && IS(s[j], ALPHA) && s[j + 1] == '.') {
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

/* The argument checks every function here opens with: a count (METH_FASTCALL passes
 * them unchecked), and a stride of at least ``minimum``. Both set the exception. */
static int
wrong_nargs(const char *name, Py_ssize_t want, Py_ssize_t got)
{
    if (got == want) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", name, want, got);
    return -1;
}

static int
stride_arg(PyObject *obj, Py_ssize_t minimum, Py_ssize_t *stride)
{
    *stride = PyLong_AsSsize_t(obj);
    if (*stride == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*stride < minimum) {
        PyErr_Format(PyExc_ValueError, "stride must be at least %zd", minimum);
        return -1;
    }
    return 0;
}

/* A growing run of int64 values, given to Python as bytes (no int object per value). */
typedef struct {
    int64_t *items;
    Py_ssize_t size, capacity;
} Run;

static int
run_add(Run *r, int64_t a, int64_t b)
{
    if (r->size + 2 > r->capacity) {
        Py_ssize_t capacity = r->capacity ? 2 * r->capacity : 32;  /* queries are short */
        int64_t *items = PyMem_Realloc(r->items, (size_t)capacity * sizeof(int64_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->items = items;
        r->capacity = capacity;
    }
    r->items[r->size++] = a;
    r->items[r->size++] = b;
    return 0;
}

PyDoc_STRVAR(split_plain_doc,
"split_plain(text, cache, spell, stop, base=0, /)\n--\n\n"
"Split ASCII ``text`` as normalize._ASCII_TOKEN splits it lower-cased: (parts, spellings,\n"
"folded, stops, bounds), the bounds counted from ``base``. See normalize._split_plain,\n"
"which this is the compiled form of.");

static PyObject *
split_plain(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5) {
        PyErr_Format(PyExc_TypeError, "split_plain takes 4 or 5 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *text = args[0], *cache = args[1], *spell = args[2], *stop = args[3];
    /* where ``text`` starts in the field it was cut from (normalize._split_mixed) */
    Py_ssize_t base = 0;
    if (nargs == 5 && (base = PyLong_AsSsize_t(args[4])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
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
    Run bounds = {NULL, 0, 0};  /* each word's start and end offsets */
    if (parts == NULL || spellings == NULL || folded == NULL || stops == NULL) {
        goto error;
    }
    Py_ssize_t pos = 0, last = 0, surfaces = 0;
    while (pos < n) {
        Py_UCS1 c = s[pos];  /* below 128: the text is ASCII, checked above */
        Py_ssize_t end;
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
            if (PyList_Append(spellings, Py_None) < 0 || PyList_Append(folded, surface) < 0
                || run_add(&bounds, base + pos, base + end) < 0) {
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
                if (!failed && truth) {  /* the word ends where its spelling says */
                    Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(spelled, 1));
                    failed = (length == -1 && PyErr_Occurred())
                             || run_add(&bounds, base + pos, base + pos + length) < 0;
                }
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
    PyObject *packed = PyBytes_FromStringAndSize(
        (const char *)bounds.items, bounds.size * (Py_ssize_t)sizeof(int64_t));
    if (packed == NULL) {
        goto error;
    }
    PyMem_Free(bounds.items);
    return Py_BuildValue("(NNNNN)", parts, spellings, folded, stops, packed);

error:
    PyMem_Free(bounds.items);
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
    if (wrong_nargs("place", 2, nargs) < 0) {
        return NULL;
    }
    Py_ssize_t stride;
    if (stride_arg(args[1], 0, &stride) < 0) {
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

static int
compare_places(const void *a, const void *b)
{
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return (x > y) - (x < y);
}

/* Every place of any of ``keys`` in ``where`` as C integers, in order: copied before any
 * Python code could run (a key's __eq__ could change ``where``), then ordered when from
 * several keys. Sets *count; NULL with an exception set, or a PyMem block to free (NULL
 * too when there is no place, with no exception). */
static Py_ssize_t *
places_of(PyObject *where, PyObject *keys, Py_ssize_t *count)
{
    Py_ssize_t *places = NULL, capacity = 0, lists = 0;
    *count = 0;
    /* A tuple (a slot is one already: no copy), so that no Python code a lookup runs can
     * change the keys under the walk, and no iterator is made per word. */
    PyObject *tuple = PySequence_Tuple(keys);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(tuple); k++) {
        PyObject *found = PyDict_GetItemWithError(where, PyTuple_GET_ITEM(tuple, k));
        if (found == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            continue;
        }
        if (!PyList_Check(found)) {
            PyErr_SetString(PyExc_TypeError, "where must map keys to lists of places");
            goto error;
        }
        Py_ssize_t size = PyList_GET_SIZE(found);
        lists += size > 0;
        if (*count + size > capacity) {
            Py_ssize_t wanted = (*count + size) * 2;
            Py_ssize_t *grown = PyMem_Realloc(places, (size_t)wanted * sizeof(Py_ssize_t));
            if (grown == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            places = grown;
            capacity = wanted;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            Py_ssize_t place = PyLong_AsSsize_t(PyList_GET_ITEM(found, i));
            if (place == -1 && PyErr_Occurred()) {
                goto error;
            }
            places[(*count)++] = place;
        }
    }
    Py_DECREF(tuple);
    if (lists > 1) {
        qsort(places, (size_t)*count, sizeof(Py_ssize_t), compare_places);
    }
    return places;

error:
    Py_DECREF(tuple);
    PyMem_Free(places);
    *count = 0;
    return NULL;
}

/* divmod(place, stride), flooring as Python's does */
static void
split_place(Py_ssize_t place, Py_ssize_t stride, Py_ssize_t *field, Py_ssize_t *token)
{
    *field = place / stride;
    *token = place % stride;
    if (*token < 0) {
        *token += stride;
        *field -= 1;
    }
}

/* Append the occurrence (field, first, last, ((field, first, last),)) to ``out``; ``f``
 * is the field as an int object, borrowed. 0, or -1 with an exception set. */
static int
append_occurrence(PyObject *out, PyObject *f, Py_ssize_t first, Py_ssize_t last)
{
    PyObject *a = PyLong_FromSsize_t(first);
    PyObject *b = a == NULL ? NULL : first == last ? Py_NewRef(a) : PyLong_FromSsize_t(last);
    PyObject *span = b == NULL ? NULL : PyTuple_Pack(3, f, a, b);
    PyObject *spans = span == NULL ? NULL : PyTuple_Pack(1, span);
    PyObject *occurrence = spans == NULL ? NULL : PyTuple_Pack(4, f, a, b, spans);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(span);
    Py_XDECREF(spans);
    return append_new(out, occurrence);
}

static int
check_where_fields(PyObject *where, PyObject *fields)
{
    if (!PyDict_Check(where)) {
        PyErr_SetString(PyExc_TypeError, "where must be a dict");
        return -1;
    }
    if (!PyAnySet_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "fields must be a set");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(word_occurrences_doc,
"word_occurrences(where, keys, fields, stride, /)\n--\n\n"
"Every place of any of ``keys`` in ``fields``, in text order, each its own span: see\n"
"plan.word_occurrences, which this is the compiled form of.");

static PyObject *
word_occurrences(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_nargs("word_occurrences", 4, nargs) < 0) {
        return NULL;
    }
    PyObject *where = args[0], *fields = args[2];
    Py_ssize_t stride, count;
    if (check_where_fields(where, fields) < 0
        || stride_arg(args[3], 1, &stride) < 0) {  /* divided by below */
        return NULL;
    }
    Py_ssize_t *places = places_of(where, args[1], &count);
    if (places == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *out = PyList_New(0);
    for (Py_ssize_t k = 0; out != NULL && k < count; k++) {
        Py_ssize_t field, token;
        split_place(places[k], stride, &field, &token);
        PyObject *f = PyLong_FromSsize_t(field);
        int wanted = f == NULL ? -1 : PySet_Contains(fields, f);
        if (wanted < 0 || (wanted && append_occurrence(out, f, token, token) < 0)) {
            Py_CLEAR(out);
        }
        Py_XDECREF(f);
    }
    PyMem_Free(places);
    return out;
}

PyDoc_STRVAR(phrase_occurrences_doc,
"phrase_occurrences(where, folded, keys, anchor, sequence, fields, stride, /)\n--\n\n"
"Every place in ``fields`` where the words ``sequence`` stand, found from the places of\n"
"word ``anchor`` (any of ``keys``), in text order: see plan.phrase_occurrences, which\n"
"this is the compiled form of.");

static PyObject *
phrase_occurrences(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_nargs("phrase_occurrences", 7, nargs) < 0) {
        return NULL;
    }
    PyObject *where = args[0], *folded = args[1], *sequence = args[4], *fields = args[5];
    Py_ssize_t stride, anchor, count;
    if (check_where_fields(where, fields) < 0 || stride_arg(args[6], 1, &stride) < 0) {
        return NULL;
    }
    if (!PyTuple_Check(folded) && !PyList_Check(folded)) {
        PyErr_SetString(PyExc_TypeError, "folded must be a list or tuple of lists");
        return NULL;
    }
    if (!PyList_Check(sequence) || PyList_GET_SIZE(sequence) == 0) {
        PyErr_SetString(PyExc_TypeError, "sequence must be a non-empty list");
        return NULL;
    }
    anchor = PyLong_AsSsize_t(args[3]);
    if (anchor == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (anchor < 0 || anchor >= PyList_GET_SIZE(sequence)) {
        PyErr_SetString(PyExc_ValueError, "anchor must index sequence");
        return NULL;
    }
    Py_ssize_t *places = places_of(where, args[2], &count);
    if (places == NULL && PyErr_Occurred()) {
        return NULL;
    }
    /* Held for the comparisons, which may run Python code (a str subclass's __eq__). */
    PyObject *words = PySequence_Tuple(sequence);
    PyObject *fields_words = PySequence_Tuple(folded);
    PyObject *out = words == NULL || fields_words == NULL ? NULL : PyList_New(0);
    Py_ssize_t size = words == NULL ? 0 : PyTuple_GET_SIZE(words);
    for (Py_ssize_t k = 0; out != NULL && k < count; k++) {
        Py_ssize_t field, token;
        split_place(places[k], stride, &field, &token);
        Py_ssize_t first = token - anchor;
        if (first < 0 || field < 0 || field >= PyTuple_GET_SIZE(fields_words)) {
            continue;
        }
        PyObject *f = PyLong_FromSsize_t(field);
        int wanted = f == NULL ? -1 : PySet_Contains(fields, f);
        if (wanted > 0) {
            PyObject *list = PyTuple_GET_ITEM(fields_words, field);
            if (!PyList_Check(list)) {
                PyErr_SetString(PyExc_TypeError, "folded must be a list or tuple of lists");
                wanted = -1;
            }
            /* The field's words from ``first`` on, equal to the sequence's, one by one. */
            for (Py_ssize_t j = 0; wanted > 0 && j < size; j++) {
                if (first + j >= PyList_GET_SIZE(list)) {
                    wanted = 0;
                    break;
                }
                PyObject *word = Py_NewRef(PyList_GET_ITEM(list, first + j));
                wanted = PyObject_RichCompareBool(word, PyTuple_GET_ITEM(words, j), Py_EQ);
                Py_DECREF(word);
            }
        }
        if (wanted < 0 || (wanted && append_occurrence(out, f, first, first + size - 1) < 0)) {
            Py_CLEAR(out);
        }
        Py_XDECREF(f);
    }
    Py_XDECREF(words);
    Py_XDECREF(fields_words);
    PyMem_Free(places);
    return out;
}

/* A span (field, first, last) as three int64 values: 0, or -1 with an exception set. */
static int
span_place(PyObject *span, int64_t place[3])
{
    if (!PyTuple_Check(span) || PyTuple_GET_SIZE(span) != 3) {
        PyErr_SetString(PyExc_TypeError, "spans must be (field, first, last) tuples");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        place[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(span, i));
        if (place[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* Attribute names read from plan nodes, views and tokens, interned once. */
enum {
    A_IDENT, A_ITEMS, A_ITEM, A_LEFT, A_RIGHT, A_DISTANCE, A_LOOKUP, A_FIELDS, A_SEQUENCE,
    A_ANCHOR, A_CASE, A_WHERE, A_FOLDED, A_MEMO, A_TOKENS, A_FIND, A_HOLDS, A_EVIDENCE,
    A_BREAKS, A_PACKED, A_TEXTS, A_TERMS, A_TEXT, A_FIELD, A_START, A_END, A_RULE,
    A_LAZY_SNIPPET, NAMES
};
static const char *const name_texts[NAMES] = {
    "ident", "items", "item", "left", "right", "distance", "lookup", "fields", "sequence",
    "anchor", "case_sensitive", "where", "folded", "memo", "tokens", "find", "holds",
    "evidence", "breaks", "_packed", "texts", "terms", "text", "field", "start", "end",
    "rule", "lazy_snippet",
};
static PyObject *attr_names[NAMES];

static PyObject *
attr(PyObject *obj, int name)
{
    return PyObject_GetAttr(obj, attr_names[name]);
}

/* ---- Objects of a frozen dataclass, made as object.__new__ and its __init__ do ---- */

/* 0 when ``cls`` is a class object.__new__ makes (a dataclass), else -1 with TypeError. */
static int
plain_class(PyObject *cls, const char *maker)
{
    PyTypeObject *made = (PyTypeObject *)cls;
    if (made->tp_new != PyBaseObject_Type.tp_new || made->tp_itemsize != 0
        || PyType_HasFeature(made, Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_Format(PyExc_TypeError, "%s cannot make %s objects", maker, made->tp_name);
        return -1;
    }
    return 0;
}

/* A new ``cls`` (checked by plain_class) with its ``n`` fields named by ``names`` set to
 * ``values``, each through object.__setattr__ as a frozen dataclass's __init__ sets it;
 * NULL with an exception set. */
static PyObject *
instance(PyObject *cls, const int *names, PyObject *const *values, int n)
{
    PyObject *made = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    for (int i = 0; made != NULL && i < n; i++) {
        if (PyObject_GenericSetAttr(made, attr_names[names[i]], values[i]) < 0) {
            Py_CLEAR(made);
        }
    }
    return made;
}

/* ---- Making matched terms: snippet.make_term, for text the ASCII split packed ---- */

typedef struct {
    PyObject_HEAD
    PyObject *cls;       /* MatchedTerm */
    PyObject *fields;    /* the field names, by field index */
    PyObject *fallback;  /* snippet.make_term, for text split in Python */
} TermMaker;

/* ``span``'s term from the word offsets the split packed (int64 start and end per word),
 * made as the dataclass's own __init__ makes it, each field set through object.__setattr__;
 * NULL with no exception set when the field's text was not packed. */
static PyObject *
packed_term(TermMaker *self, PyObject *view, PyObject *span)
{
    int64_t place[3];
    PyObject *term = NULL, *text = NULL, *start = NULL, *end = NULL, *packed = NULL;
    PyObject *tokens = NULL, *field = NULL, *texts = NULL, *found = NULL;
    if (span_place(span, place) < 0) {
        return NULL;
    }
    PyObject *all = attr(view, A_TOKENS);
    tokens = all == NULL ? NULL : PySequence_GetItem(all, (Py_ssize_t)place[0]);
    Py_XDECREF(all);
    packed = tokens == NULL ? NULL : attr(tokens, A_PACKED);
    if (packed == NULL || !PyBytes_CheckExact(packed)) {
        goto done;  /* an error, or None: not split by split_plain */
    }
    const int64_t *bounds = (const int64_t *)PyBytes_AS_STRING(packed);
    Py_ssize_t words = PyBytes_GET_SIZE(packed) / (Py_ssize_t)(2 * sizeof(int64_t));
    if (place[1] < 0 || place[2] < place[1] || place[2] >= words) {
        PyErr_SetString(PyExc_IndexError, "a span's words are not in its field");
        goto done;
    }
    field = PySequence_GetItem(self->fields, (Py_ssize_t)place[0]);
    texts = field == NULL ? NULL : attr(view, A_TEXTS);
    found = texts == NULL ? NULL : PySequence_GetItem(texts, (Py_ssize_t)place[0]);
    if (found == NULL) {
        goto done;
    }
    if (!PyUnicode_Check(found)) {
        PyErr_SetString(PyExc_TypeError, "a view's texts must be str");
        goto done;
    }
    int64_t from = bounds[2 * place[1]], to = bounds[2 * place[2] + 1];
    if (from < 0 || to < from || to > PyUnicode_GET_LENGTH(found)) {
        PyErr_SetString(PyExc_IndexError, "packed offsets outside the text");
        goto done;
    }
    text = PyUnicode_Substring(found, (Py_ssize_t)from, (Py_ssize_t)to);
    start = text == NULL ? NULL : PyLong_FromLongLong(from);
    end = start == NULL ? NULL : PyLong_FromLongLong(to);
    static const int names[] = {A_TEXT, A_FIELD, A_START, A_END};
    PyObject *values[] = {text, field, start, end};
    term = end == NULL ? NULL : instance(self->cls, names, values, 4);
    if (term == NULL) {
        goto done;
    }
    PyObject *made = attr(view, A_TERMS);
    if (made == NULL || PyObject_SetItem(made, span, term) < 0) {
        Py_CLEAR(term);
    }
    Py_XDECREF(made);

done:
    Py_XDECREF(tokens);
    Py_XDECREF(packed);
    Py_XDECREF(field);
    Py_XDECREF(texts);
    Py_XDECREF(found);
    Py_XDECREF(text);
    Py_XDECREF(start);
    Py_XDECREF(end);
    return term;
}

/* make(view, span): the packed path where it applies, else the fallback. */
static PyObject *
term_of(TermMaker *self, PyObject *view, PyObject *span)
{
    PyObject *term = packed_term(self, view, span);
    if (term != NULL || PyErr_Occurred()) {
        return term;
    }
    return PyObject_CallFunctionObjArgs(self->fallback, view, span, NULL);
}

static PyObject *
termmaker_call(TermMaker *self, PyObject *args, PyObject *kwargs)
{
    PyObject *view, *span;
    static char *keywords[] = {"view", "span", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:TermMaker", keywords, &view, &span)) {
        return NULL;
    }
    return term_of(self, view, span);
}

static PyObject *
termmaker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *fields, *fallback;
    static char *keywords[] = {"cls", "fields", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O:TermMaker", keywords, &PyType_Type,
                                     &cls, &PyTuple_Type, &fields, &fallback)) {
        return NULL;
    }
    if (plain_class(cls, "TermMaker") < 0) {
        return NULL;
    }
    TermMaker *self = (TermMaker *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->cls = Py_NewRef(cls);
        self->fields = Py_NewRef(fields);
        self->fallback = Py_NewRef(fallback);
    }
    return (PyObject *)self;
}

static void
termmaker_dealloc(TermMaker *self)
{
    Py_XDECREF(self->cls);
    Py_XDECREF(self->fields);
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject TermMakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.rules._speedups.TermMaker",
    .tp_basicsize = sizeof(TermMaker),
    .tp_dealloc = (destructor)termmaker_dealloc,
    .tp_call = (ternaryfunc)termmaker_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR(
        "TermMaker(cls, fields, fallback)\n--\n\n"
        "snippet.make_term in C where the split packed the words' offsets: see snippet.py."),
    .tp_new = termmaker_new,
};

/* One span to report: its place, and the span tuple itself (a new reference). */
typedef struct {
    int64_t field, first, last;
    PyObject *span;
} Reported;

static int
compare_reported(const void *a, const void *b)
{
    const Reported *x = a, *y = b;
    if (x->field != y->field) {
        return (x->field > y->field) - (x->field < y->field);
    }
    if (x->first != y->first) {
        return (x->first > y->first) - (x->first < y->first);
    }
    return (x->last < y->last) - (x->last > y->last);  /* the longest first */
}

PyDoc_STRVAR(matched_terms_doc,
"matched_terms(spans, made, make, view, /)\n--\n\n"
"Each distinct span of ``spans`` once, in field and text order, none inside another, as\n"
"its term: ``made[span]``, else ``make(view, span)``. See snippet.matched_terms, which\n"
"this is the compiled form of.");

static PyObject *
matched_terms(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_nargs("matched_terms", 4, nargs) < 0) {
        return NULL;
    }
    PyObject *made = args[1], *make = args[2], *view = args[3];
    if (!PyDict_Check(made)) {
        PyErr_SetString(PyExc_TypeError, "made must be a dict");
        return NULL;
    }
    /* The spans are copied, each held, before any Python code runs (``make``). */
    PyObject *spans = PySequence_Tuple(args[0]);
    if (spans == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(spans), kept = 0, held = 0;
    Reported *all = PyMem_Calloc((size_t)n + 1, sizeof(Reported));
    PyObject *out = NULL;
    if (all == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < n; held++) {
        PyObject *span = PyTuple_GET_ITEM(spans, held);
        int64_t place[3];
        if (span_place(span, place) < 0) {
            goto done;
        }
        Reported *r = &all[held];
        r->field = place[0];
        r->first = place[1];
        r->last = place[2];
        r->span = Py_NewRef(span);
    }
    qsort(all, (size_t)n, sizeof(Reported), compare_reported);
    /* Keep a span unless one kept already, in its field, ends no earlier: that one starts
     * no later, so this one lies inside it (or is the same). */
    for (Py_ssize_t i = 0; i < n; i++) {
        if (kept && all[i].field == all[kept - 1].field && all[i].last <= all[kept - 1].last) {
            continue;
        }
        Reported swap = all[kept];
        all[kept++] = all[i];
        all[i] = swap;
    }
    out = PyTuple_New(kept);
    for (Py_ssize_t i = 0; out != NULL && i < kept; i++) {
        PyObject *term = PyDict_GetItemWithError(made, all[i].span);
        if (term != NULL) {
            Py_INCREF(term);
        }
        else if (!PyErr_Occurred()) {
            term = Py_IS_TYPE(make, &TermMakerType)
                       ? term_of((TermMaker *)make, view, all[i].span)
                       : PyObject_CallFunctionObjArgs(make, view, all[i].span, NULL);
        }
        if (term == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, term);
    }

done:
    for (Py_ssize_t i = 0; all != NULL && i < held; i++) {
        Py_DECREF(all[i].span);
    }
    PyMem_Free(all);
    Py_DECREF(spans);
    return out;
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

/* Lists of small ints packed one after another: list i is data[start[i]:start[i + 1]]. */
typedef struct {
    uint32_t *start;
    uint32_t *data;
} Packed;

static void
packed_free(Packed *p)
{
    PyMem_Free(p->start);
    PyMem_Free(p->data);
    p->start = p->data = NULL;
}

/* Pack ``lists`` (a sequence of sequences of ints below ``limit``); 0 or -1. */
static int
pack(Packed *p, PyObject *lists, Py_ssize_t limit)
{
    PyObject *outer = PySequence_Fast(lists, "expected a sequence of sequences of ints");
    if (outer == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(outer), total = 0;
    p->start = PyMem_Calloc((size_t)n + 1, sizeof(uint32_t));
    if (p->start == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size = PyObject_Length(PySequence_Fast_GET_ITEM(outer, i));
        if (size < 0) {
            goto error;
        }
        total += size;
        if (total > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "too many numbers");
            goto error;
        }
        p->start[i + 1] = (uint32_t)total;
    }
    p->data = PyMem_Calloc((size_t)total + 1, sizeof(uint32_t));
    if (p->data == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *inner = PySequence_Fast(PySequence_Fast_GET_ITEM(outer, i),
                                          "expected a sequence of sequences of ints");
        if (inner == NULL) {
            goto error;
        }
        Py_ssize_t size = PySequence_Fast_GET_SIZE(inner);
        if (size != (Py_ssize_t)(p->start[i + 1] - p->start[i])) {
            PyErr_SetString(PyExc_ValueError, "a sequence changed size while packed");
            Py_DECREF(inner);
            goto error;
        }
        for (Py_ssize_t j = 0; j < size; j++) {
            Py_ssize_t v = number(PySequence_Fast_GET_ITEM(inner, j), limit);
            if (v < 0) {
                Py_DECREF(inner);
                goto error;
            }
            p->data[p->start[i] + j] = (uint32_t)v;
        }
        Py_DECREF(inner);
    }
    Py_DECREF(outer);
    return 0;

error:
    Py_DECREF(outer);
    packed_free(p);
    return -1;
}

/* A hash table from str keys (words) or 2-tuples of str (neighbour pairs) to a packed
 * list of key set numbers: open addressing, the hash kept in the slot, so that a probe
 * reads one slot and, when the hashes agree, compares the keys (a dict reads its index,
 * its entry, the key and the value's tuple and ints). */
typedef struct {
    Py_hash_t hash;
    PyObject *key;  /* NULL: empty slot */
    uint32_t start, count;
} Slot;

typedef struct {
    Slot *slots;
    size_t mask;
} Table;

/* A pair's hash, from its words' hashes (any mix will do: it is ours on both sides). */
static Py_hash_t
pair_hash(Py_hash_t a, Py_hash_t b)
{
    Py_uhash_t h = (Py_uhash_t)a * 0x9E3779B97F4A7C15ull ^ (Py_uhash_t)b;
    h ^= h >> 29;
    return (Py_hash_t)(h == (Py_uhash_t)-1 ? 0 : h);
}

/* The hash of a key: a str's own, or pair_hash of a 2-tuple of str; -1 on error. */
static Py_hash_t
key_hash(PyObject *key, int pairs)
{
    if (!pairs) {
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "word keys must be str");
            return -1;
        }
        return PyObject_Hash(key);
    }
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2
        || !PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 0))
        || !PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 1))) {
        PyErr_SetString(PyExc_TypeError, "pair keys must be 2-tuples of str");
        return -1;
    }
    Py_hash_t a = PyObject_Hash(PyTuple_GET_ITEM(key, 0));
    Py_hash_t b = a == -1 ? -1 : PyObject_Hash(PyTuple_GET_ITEM(key, 1));
    return b == -1 ? -1 : pair_hash(a, b);
}

/* Exact str equality (both are exact str: no Python code runs). */
static int
same_str(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
           && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

/* The slot of word ``a`` (or of pair ``a``, ``b`` when ``b`` is not NULL), or NULL. */
static const Slot *
find(const Table *t, Py_hash_t hash, PyObject *a, PyObject *b)
{
    for (size_t i = (size_t)hash & t->mask;; i = (i + 1) & t->mask) {
        const Slot *slot = &t->slots[i];
        if (slot->key == NULL) {
            return NULL;
        }
        if (slot->hash != hash) {
            continue;
        }
        if (b == NULL ? same_str(slot->key, a)
                      : same_str(PyTuple_GET_ITEM(slot->key, 0), a)
                            && same_str(PyTuple_GET_ITEM(slot->key, 1), b)) {
            return slot;
        }
    }
}

static void
table_free(Table *t)
{
    if (t->slots != NULL) {
        for (size_t i = 0; i <= t->mask; i++) {
            Py_XDECREF(t->slots[i].key);
        }
        PyMem_Free(t->slots);
        t->slots = NULL;
    }
}

/* Fill ``t`` from ``mapping`` (key -> sequence of key set numbers below ``sets``), the
 * numbers packed into ``values``; a dict's keys are distinct (exact str, or 2-tuples of
 * exact str), so each takes a free slot. 0, or -1 with an exception set. */
static int
table_fill(Table *t, PyObject *mapping, int pairs, Packed *values, Py_ssize_t sets)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "word_sets and pair_sets must be dicts");
        return -1;
    }
    Py_ssize_t n = PyDict_Size(mapping);
    size_t size = 8;
    while (size < (size_t)n + (size_t)n / 2 + 1) {  /* at most two thirds full */
        size *= 2;
    }
    t->mask = size - 1;
    t->slots = PyMem_Calloc(size, sizeof(Slot));
    if (t->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *keys = PyDict_Keys(mapping), *lists = PyDict_Values(mapping);
    int failed = keys == NULL || lists == NULL || pack(values, lists, sets) < 0;
    for (Py_ssize_t k = 0; !failed && k < PyList_GET_SIZE(keys); k++) {
        PyObject *key = PyList_GET_ITEM(keys, k);
        Py_hash_t hash = key_hash(key, pairs);
        if (hash == -1) {
            failed = 1;
            break;
        }
        size_t i = (size_t)hash & t->mask;
        while (t->slots[i].key != NULL) {
            i = (i + 1) & t->mask;
        }
        Py_INCREF(key);
        t->slots[i] = (Slot){hash, key, values->start[k], values->start[k + 1] - values->start[k]};
    }
    Py_XDECREF(keys);
    Py_XDECREF(lists);
    return failed ? -1 : 0;
}

/* What the index needs to gather a document's candidates, packed; see index.Gatherer. */
typedef struct {
    PyObject_HEAD
    Table words, pairs;
    Packed word_sets, pair_sets;  /* the tables' values */
    Packed needs;                 /* per rule: the key sets it needs */
    Packed filed;                 /* per key set: the rules filed under it */
    Py_ssize_t rules, sets;
} Gatherer;

static void
gatherer_dealloc(Gatherer *self)
{
    table_free(&self->words);
    table_free(&self->pairs);
    packed_free(&self->word_sets);
    packed_free(&self->pair_sets);
    packed_free(&self->needs);
    packed_free(&self->filed);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* File every rule under the key set ``by_need`` gives it (key set -> rule numbers). */
static int
gatherer_file(Gatherer *self, PyObject *by_need)
{
    if (!PyDict_Check(by_need)) {
        PyErr_SetString(PyExc_TypeError, "by_need must be a dict");
        return -1;
    }
    PyObject *lists = PyList_New(self->sets);
    if (lists == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < self->sets; i++) {
        PyList_SET_ITEM(lists, i, PyTuple_New(0));  /* the empty tuple is shared */
    }
    Py_ssize_t pos = 0;
    PyObject *need, *rules;
    while (PyDict_Next(by_need, &pos, &need, &rules)) {
        Py_ssize_t n = number(need, self->sets);
        if (n < 0) {
            Py_DECREF(lists);
            return -1;
        }
        Py_INCREF(rules);
        PyList_SetItem(lists, n, rules);
    }
    Packed filed = {NULL, NULL};
    int failed = pack(&filed, lists, self->rules);
    Py_DECREF(lists);
    if (failed) {
        return -1;
    }
    packed_free(&self->filed);
    self->filed = filed;
    return 0;
}

static PyObject *
gatherer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *word_sets, *pair_sets, *needs, *by_need;
    Py_ssize_t sets;
    static char *names[] = {"word_sets", "pair_sets", "needs", "by_need", "sets", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOn:Gatherer", names, &word_sets,
                                     &pair_sets, &needs, &by_need, &sets)) {
        return NULL;
    }
    if (sets < 0 || sets > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "sets out of range");
        return NULL;
    }
    Gatherer *self = (Gatherer *)type->tp_alloc(type, 0);  /* zeroed */
    if (self == NULL) {
        return NULL;
    }
    self->sets = sets;
    self->rules = PyObject_Length(needs);
    if (self->rules < 0 || table_fill(&self->words, word_sets, 0, &self->word_sets, sets) < 0
        || table_fill(&self->pairs, pair_sets, 1, &self->pair_sets, sets) < 0
        || pack(&self->needs, needs, sets) < 0 || gatherer_file(self, by_need) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
gatherer_refile(Gatherer *self, PyObject *by_need)
{
    if (gatherer_file(self, by_need) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The key sets met, as bits and in the order met. */
typedef struct {
    Bits bits;
    uint32_t *order;
    Py_ssize_t count;
} Met;

static void
meet(Met *met, const Packed *values, const Slot *slot)
{
    for (uint32_t j = slot->start; j < slot->start + slot->count; j++) {
        uint32_t n = values->data[j];
        if (!HAS(met->bits, n)) {
            ADD(met->bits, n);
            met->order[met->count++] = n;  /* each number once: at most ``sets`` */
        }
    }
}

PyDoc_STRVAR(gather_doc,
"gather(present, fields, learn, /)\n--\n\n"
"The rules whose needs are all met, in order, and (when ``learn``) the key sets met:\n"
"see index.Gatherer.gather, which this is the compiled form of.");

static PyObject *
gatherer_gather(Gatherer *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (wrong_nargs("gather", 3, nargs) < 0) {
        return NULL;
    }
    int learn = PyObject_IsTrue(args[2]);
    if (learn < 0) {
        return NULL;
    }
    Met met = {{NULL, 0}, NULL, 0};
    Bits ready = {NULL, 0};
    PyObject *words = NULL, *fields = NULL, *out = NULL, *result = NULL;
    if (bits_init(&met.bits, self->sets) < 0 || bits_init(&ready, self->rules) < 0) {
        goto done;
    }
    met.order = PyMem_Malloc(((size_t)self->sets + 1) * sizeof(uint32_t));
    if (met.order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The key sets of the document's distinct words. */
    words = PyObject_GetIter(args[0]);
    if (words == NULL) {
        goto done;
    }
    PyObject *word;
    while ((word = PyIter_Next(words)) != NULL) {
        if (!PyUnicode_CheckExact(word)) {
            Py_DECREF(word);
            PyErr_SetString(PyExc_TypeError, "present must hold str");
            goto done;
        }
        Py_hash_t hash = PyObject_Hash(word);  /* kept by the str: computed once */
        const Slot *slot = hash == -1 ? NULL : find(&self->words, hash, word, NULL);
        Py_DECREF(word);
        if (hash == -1) {
            goto done;
        }
        if (slot != NULL) {
            meet(&met, &self->word_sets, slot);
        }
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    /* Those of its neighbouring words, field by field: no tuple is made. */
    fields = PySequence_Fast(args[1], "fields must be a sequence of lists of str");
    if (fields == NULL) {
        goto done;
    }
    for (Py_ssize_t f = 0; f < PySequence_Fast_GET_SIZE(fields); f++) {
        PyObject *keys = PySequence_Fast_GET_ITEM(fields, f);
        if (!PyList_Check(keys)) {
            PyErr_SetString(PyExc_TypeError, "fields must be a sequence of lists of str");
            goto done;
        }
        /* No Python code runs below (exact str hash and compare), so the list stays. */
        Py_hash_t previous = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            PyObject *key = PyList_GET_ITEM(keys, i);
            if (!PyUnicode_CheckExact(key)) {
                PyErr_SetString(PyExc_TypeError, "fields must be a sequence of lists of str");
                goto done;
            }
            Py_hash_t hash = PyObject_Hash(key);
            if (hash == -1) {
                goto done;
            }
            if (i > 0) {
                PyObject *before = PyList_GET_ITEM(keys, i - 1);
                const Slot *slot = find(&self->pairs, pair_hash(previous, hash), before, key);
                if (slot != NULL) {
                    meet(&met, &self->pair_sets, slot);
                }
            }
            previous = hash;
        }
    }
    /* The rules filed under a key set met, kept when every key set they need is met. */
    const Packed *filed = &self->filed, *needs = &self->needs;
    for (Py_ssize_t m = 0; m < met.count; m++) {
        uint32_t set = met.order[m];
        for (uint32_t k = filed->start[set]; k < filed->start[set + 1]; k++) {
            uint32_t rule = filed->data[k], j = needs->start[rule];
            while (j < needs->start[rule + 1] && HAS(met.bits, needs->data[j])) {
                j++;
            }
            if (j == needs->start[rule + 1]) {
                ADD(ready, rule);
            }
        }
    }
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t rule = 0; rule < ready.size; rule++) {
        if (!ready.bits[rule >> 3]) {  /* a byte of rules, none ready */
            rule |= 7;
            continue;
        }
        if (HAS(ready, rule) && append_new(out, PyLong_FromSsize_t(rule)) < 0) {
            goto done;
        }
    }
    PyObject *sets_met = PyList_New(learn ? met.count : 0);
    if (sets_met == NULL) {
        goto done;
    }
    for (Py_ssize_t m = 0; learn && m < met.count; m++) {
        PyObject *n = PyLong_FromUnsignedLong(met.order[m]);
        if (n == NULL) {
            Py_DECREF(sets_met);
            goto done;
        }
        PyList_SET_ITEM(sets_met, m, n);
    }
    result = PyTuple_Pack(2, out, sets_met);
    Py_DECREF(sets_met);

done:
    Py_XDECREF(words);
    Py_XDECREF(fields);
    Py_XDECREF(out);
    PyMem_Free(met.order);
    PyMem_Free(met.bits.bits);
    PyMem_Free(ready.bits);
    return result;
}

static PyMethodDef gatherer_methods[] = {
    {"gather", (PyCFunction)(void (*)(void))gatherer_gather, METH_FASTCALL, gather_doc},
    {"refile", (PyCFunction)gatherer_refile, METH_O,
     "refile(by_need, /)\n--\n\nFile the rules anew: by_need maps a key set to rules."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GathererType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.rules._speedups.Gatherer",
    .tp_basicsize = sizeof(Gatherer),
    .tp_dealloc = (destructor)gatherer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR(
        "Gatherer(word_sets, pair_sets, needs, by_need, sets)\n--\n\n"
        "The index's key sets and needs, packed: see index.Gatherer."),
    .tp_methods = gatherer_methods,
    .tp_new = gatherer_new,
};

/* ---- Evaluating plans: plan.py's evidence, holds and occurrences in one C walk ----
 *
 * The classes of the nodes walked here are given to the Evaluator; a node of any other
 * class (a prefix, ATLEAST, a case-sensitive word's check) is asked through its own
 * Python methods, which share the view's memo, so either way every occurrence list is
 * found once per document. */

enum { WORDS, ANY_OF, NEAR, ALL, ANY, NEGATION, KINDS };

typedef struct {
    PyObject_HEAD
    PyObject *kinds[KINDS];  /* the plan classes walked in C */
    PyObject *stride;
} Evaluator;

/* One document: the view and the parts of it read here (new references). */
typedef struct {
    Evaluator *ev;
    PyObject *view, *where, *folded, *memo, *tokens;
} Doc;

static int
kind_of(const Evaluator *ev, PyObject *node)
{
    for (int k = 0; k < KINDS; k++) {
        if ((PyObject *)Py_TYPE(node) == ev->kinds[k]) {
            return k;
        }
    }
    return -1;
}

/* ``node.method(view)``, for the nodes not walked here. */
static PyObject *
ask(const Doc *d, PyObject *node, int method)
{
    return PyObject_CallMethodOneArg(node, attr_names[method], d->view);
}

/* ``items`` of an AND, OR or entity as a tuple (a new reference). */
static PyObject *
items_of(PyObject *node)
{
    PyObject *items = attr(node, A_ITEMS);
    if (items == NULL || PyTuple_CheckExact(items)) {
        return items;
    }
    PyObject *tuple = PySequence_Tuple(items);
    Py_DECREF(items);
    return tuple;
}

/* An occurrence's spans (borrowed), checked to be plan.Occurrence as made here and in
 * plan.py: an exact 4-tuple ending in an exact tuple; NULL with TypeError if not. */
static PyObject *
occurrence_spans(PyObject *o)
{
    if (!PyTuple_CheckExact(o) || PyTuple_GET_SIZE(o) != 4
        || !PyTuple_CheckExact(PyTuple_GET_ITEM(o, 3))) {
        PyErr_SetString(PyExc_TypeError, "an occurrence must be (field, first, last, spans)");
        return NULL;
    }
    return PyTuple_GET_ITEM(o, 3);
}

/* (field, first, last) of an occurrence, as plan.Occurrence: 0, or -1 with TypeError. */
static int
place_of(PyObject *o, int64_t out[3])
{
    if (occurrence_spans(o) == NULL) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        PyObject *n = PyTuple_GET_ITEM(o, i);
        out[i] = PyLong_Check(n) ? PyLong_AsLongLong(n) : -1;
        if (!PyLong_Check(n) || (out[i] == -1 && PyErr_Occurred())) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "an occurrence's place must be ints");
            }
            return -1;
        }
    }
    return 0;
}

static PyObject *occurrences(const Doc *d, PyObject *node);
static PyObject *in_one_sentence(const Doc *d, PyObject *found);

static PyObject *
find_words(const Doc *d, PyObject *node)
{
    PyObject *out = NULL, *keys = NULL, *anchor = NULL;
    PyObject *lookup = attr(node, A_LOOKUP), *fields = attr(node, A_FIELDS);
    PyObject *sequence = attr(node, A_SEQUENCE);
    if (lookup == NULL || fields == NULL || sequence == NULL) {
        goto done;
    }
    if (sequence == Py_None) {  /* a word, its forms */
        keys = PySequence_GetItem(lookup, 0);
        PyObject *args[] = {d->where, keys, fields, d->ev->stride};
        out = keys == NULL ? NULL : word_occurrences(NULL, args, 4);
        goto done;
    }
    anchor = attr(node, A_ANCHOR);
    keys = anchor == NULL ? NULL : PyObject_GetItem(lookup, anchor);
    if (keys != NULL) {
        PyObject *args[] = {d->where, d->folded, keys, anchor, sequence, fields, d->ev->stride};
        out = phrase_occurrences(NULL, args, 7);
        out = out == NULL ? NULL : in_one_sentence(d, out);
    }

done:
    Py_XDECREF(lookup);
    Py_XDECREF(fields);
    Py_XDECREF(sequence);
    Py_XDECREF(anchor);
    Py_XDECREF(keys);
    return out;
}

/* An occurrence to be ordered: its place, the order it was made in, and where from. */
typedef struct {
    int64_t place[3];
    Py_ssize_t order, a, b;
} Found;

static int
compare_found(const void *x, const void *y)
{
    const Found *p = x, *q = y;
    for (int i = 0; i < 3; i++) {
        if (p->place[i] != q->place[i]) {
            return (p->place[i] > q->place[i]) - (p->place[i] < q->place[i]);
        }
    }
    return (p->order > q->order) - (p->order < q->order);
}

/* AnyOf.find: every place any item matches, in text order; at a place several items
 * match, the last item's occurrence (as a dict keyed by place keeps it). */
static PyObject *
find_any_of(const Doc *d, PyObject *node)
{
    PyObject *items = items_of(node);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(items), total = 0, nonempty = 0, last = -1;
    PyObject **lists = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    Found *found = NULL;
    PyObject *out = NULL;
    if (lists == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        lists[i] = occurrences(d, PyTuple_GET_ITEM(items, i));
        if (lists[i] == NULL) {
            goto done;
        }
    }
    /* Sized only now: finding a later item may run Python code that changes a list. No
     * Python code runs from here on, so the sizes hold while the lists are read. */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size = PyList_GET_SIZE(lists[i]);
        total += size;
        if (size) {
            nonempty++;
            last = i;
        }
    }
    if (nonempty == 1) {
        out = Py_NewRef(lists[last]);  /* one occurrence per place, in order: no merge */
        goto done;
    }
    found = PyMem_Calloc((size_t)total + 1, sizeof(Found));
    if (found == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(lists[i]); j++, k++) {
            if (place_of(PyList_GET_ITEM(lists[i], j), found[k].place) < 0) {
                goto done;
            }
            found[k].order = k;
            found[k].a = i;
            found[k].b = j;
        }
    }
    if (total > 1) {
        qsort(found, (size_t)total, sizeof(Found), compare_found);
    }
    out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < total; i++) {
        if (i + 1 < total && !memcmp(found[i].place, found[i + 1].place, sizeof found[i].place)) {
            continue;  /* a later item matched here too */
        }
        if (PyList_Append(out, PyList_GET_ITEM(lists[found[i].a], found[i].b)) < 0) {
            Py_CLEAR(out);
        }
    }

done:
    for (Py_ssize_t i = 0; lists != NULL && i < n; i++) {
        Py_XDECREF(lists[i]);
    }
    PyMem_Free(lists);
    PyMem_Free(found);
    Py_DECREF(items);
    return out;
}

/* Where each sentence of a field ends (Tokens.breaks), read once per field and NEAR. */
typedef struct {
    int64_t *ends;
    Py_ssize_t count;
    int read;
} Breaks;

static int
read_breaks(const Doc *d, Py_ssize_t field, Breaks *b)
{
    PyObject *tokens = PySequence_GetItem(d->tokens, field);
    PyObject *list = tokens == NULL ? NULL : PyObject_CallMethodNoArgs(tokens, attr_names[A_BREAKS]);
    Py_XDECREF(tokens);
    if (list == NULL) {
        return -1;
    }
    PyObject *fast = PySequence_Fast(list, "breaks must be a sequence");
    Py_DECREF(list);
    if (fast == NULL) {
        return -1;
    }
    b->count = PySequence_Fast_GET_SIZE(fast);
    b->ends = PyMem_Calloc((size_t)b->count + 1, sizeof(int64_t));
    int failed = b->ends == NULL;
    if (failed) {
        PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; !failed && i < b->count; i++) {
        b->ends[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
        failed = b->ends[i] == -1 && PyErr_Occurred();
    }
    Py_DECREF(fast);
    b->read = !failed;
    return failed ? -1 : 0;
}

/* Tokens.sentence_of: how many sentence ends come at or before word ``i``. */
static Py_ssize_t
sentence_of(const Breaks *b, int64_t i)
{
    Py_ssize_t lo = 0, hi = b->count;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (i < b->ends[mid]) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* An occurrence's index, ordered by its field and one of its words. */
typedef struct {
    int64_t field, at;
    Py_ssize_t index;
} Sorted;

static int
compare_sorted(const void *x, const void *y)
{
    const Sorted *p = x, *q = y;
    if (p->field != q->field) {
        return (p->field > q->field) - (p->field < q->field);
    }
    if (p->at != q->at) {
        return (p->at > q->at) - (p->at < q->at);
    }
    return (p->index > q->index) - (p->index < q->index);
}

/* The indices of ``n`` places, ordered by field, then word ``word`` (1 first, 2 last). */
static Sorted *
sorted_by(const int64_t (*places)[3], Py_ssize_t n, int word)
{
    Sorted *out = PyMem_Calloc((size_t)n + 1, sizeof(Sorted));
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = (Sorted){places[i][0], places[i][word], i};
    }
    qsort(out, (size_t)n, sizeof(Sorted), compare_sorted);
    return out;
}

/* What a NEAR is pairing: both sides' places, the sentence ends read so far, the pairs. */
typedef struct {
    const Doc *d;
    Py_ssize_t fields;
    Breaks *breaks;  /* per field, read on first use; NULL for NEAR/n */
    int64_t reach;   /* NEAR/n's n */
    Found *found;
    Py_ssize_t count, capacity;
} Pairing;

/* Whether words ``first`` to ``last`` of ``field`` are one sentence, the field's ends read
 * into ``breaks[field]`` (of ``fields``) on first use; -1 on error. */
static int
one_sentence(const Doc *d, Breaks *breaks, Py_ssize_t fields, int64_t field, int64_t first,
             int64_t last)
{
    if (field < 0 || field >= fields) {
        PyErr_SetString(PyExc_IndexError, "an occurrence's field has no tokens");
        return -1;
    }
    Breaks *of = &breaks[field];
    if (!of->read && read_breaks(d, field, of) < 0) {
        return -1;
    }
    return sentence_of(of, first) == sentence_of(of, last);
}

static void
breaks_free(Breaks *breaks, Py_ssize_t fields)
{
    for (Py_ssize_t f = 0; breaks != NULL && f < fields; f++) {
        PyMem_Free(breaks[f].ends);
    }
    PyMem_Free(breaks);
}

/* A phrase's occurrences ``found`` (a new list, stolen) without those across a sentence
 * end: "white. House" is no "white house" (Words.find). Python code runs to read the
 * ends, but ``found`` is this call's own, so no one else changes it meanwhile. */
static PyObject *
in_one_sentence(const Doc *d, PyObject *found)
{
    Py_ssize_t n = PyList_GET_SIZE(found);
    if (n == 0) {
        return found;
    }
    Py_ssize_t fields = PyObject_Length(d->tokens);
    Breaks *breaks = fields < 0 ? NULL : PyMem_Calloc((size_t)fields + 1, sizeof(Breaks));
    PyObject *out = breaks == NULL ? NULL : PyList_New(0);
    if (fields >= 0 && breaks == NULL) {
        PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; out != NULL && k < n; k++) {
        PyObject *o = PyList_GET_ITEM(found, k);
        int64_t place[3];
        int one = place_of(o, place) < 0
                      ? -1
                      : one_sentence(d, breaks, fields, place[0], place[1], place[2]);
        if (one < 0 || (one && PyList_Append(out, o) < 0)) {
            Py_CLEAR(out);
        }
    }
    breaks_free(breaks, fields);
    Py_DECREF(found);
    return out;
}

/* Keeps the pair of left ``a`` and right ``b``, with the place they span together. */
static int
add_pair(Pairing *p, const int64_t *a, const int64_t *b, Py_ssize_t ia, Py_ssize_t ib)
{
    if (p->count == p->capacity) {
        Py_ssize_t capacity = p->capacity ? p->capacity * 2 : 16;
        Found *grown = PyMem_Realloc(p->found, (size_t)capacity * sizeof(Found));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        p->found = grown;
        p->capacity = capacity;
    }
    int64_t first = a[1] < b[1] ? a[1] : b[1], last = a[2] > b[2] ? a[2] : b[2];
    p->found[p->count++] = (Found){{a[0], first, last}, 0, ia, ib};
    return 0;
}

/* plan.closest: for each x, the y it pairs with closest on each side. After x, a window
 * over the ys by first word keeps, in a deque of increasing (last word, index), the one
 * ending first; before x, a window by last word keeps the one starting last. ``flip``:
 * the xs are the NEAR's right side. */
static int
closest(Pairing *p, const int64_t (*x)[3], Py_ssize_t nx, const int64_t (*y)[3],
        Py_ssize_t ny, int flip)
{
    Sorted *xs = NULL, *ys = NULL;
    Py_ssize_t *deque = PyMem_Calloc((size_t)ny + 1, sizeof(Py_ssize_t));
    int failed = deque == NULL;
    if (failed) {
        PyErr_NoMemory();
    }
    for (int after = 1; !failed && after >= 0; after--) {
        /* after: the xs by last word, the ys by first; before: the xs by first, ys by last */
        int x_word = after ? 2 : 1, y_word = after ? 1 : 2;
        xs = sorted_by(x, nx, x_word);
        ys = xs == NULL ? NULL : sorted_by(y, ny, y_word);
        failed = ys == NULL;
        Py_ssize_t head = 0, tail = 0, added = 0;
        for (Py_ssize_t k = 0; !failed && k < nx; k++) {
            const int64_t *o = x[xs[k].index], field = o[0];
            /* the window: ys whose y_word lies in [low, high] of x's field */
            int64_t high, low;
            if (after) {
                high = p->breaks != NULL ? INT64_MAX
                    : p->reach > INT64_MAX - o[2] ? INT64_MAX : o[2] + p->reach;
                low = o[2] + 1;
            }
            else {
                high = o[1] - 1;
                low = p->breaks != NULL ? INT64_MIN : o[1] - p->reach;
            }
            while (added < ny && (ys[added].field < field
                                  || (ys[added].field == field && ys[added].at <= high))) {
                Py_ssize_t j = ys[added++].index;
                while (tail > head) {  /* drop those the new one beats */
                    const int64_t *last = y[deque[tail - 1]];
                    int beaten = after ? last[2] > y[j][2] : last[1] < y[j][1];
                    int tied = after ? last[2] == y[j][2] : last[1] == y[j][1];
                    if (!beaten && !(tied && deque[tail - 1] > j)) {
                        break;
                    }
                    tail--;
                }
                deque[tail++] = j;
            }
            while (tail > head && (y[deque[head]][0] < field || y[deque[head]][y_word] < low)) {
                head++;
            }
            if (tail == head) {
                continue;
            }
            Py_ssize_t j = deque[head];
            int64_t first = o[1] < y[j][1] ? o[1] : y[j][1], last = o[2] > y[j][2] ? o[2] : y[j][2];
            int fits = p->breaks == NULL ? 1
                                         : one_sentence(p->d, p->breaks, p->fields, field, first,
                                                        last);
            failed = fits < 0
                || (fits && (flip ? add_pair(p, y[j], o, j, xs[k].index)
                                  : add_pair(p, o, y[j], xs[k].index, j)) < 0);
        }
        PyMem_Free(xs);
        PyMem_Free(ys);
        xs = ys = NULL;
    }
    PyMem_Free(deque);
    return failed ? -1 : 0;
}

/* The pairs of a NEAR (``lefts`` and ``rights``: tuples of occurrences), one per place,
 * the first by left and right index, in text order, as Near.find gives them; -1 on
 * error. */
static Py_ssize_t
near_pairs(const Doc *d, PyObject *lefts, PyObject *rights, PyObject *distance, Found **out)
{
    Py_ssize_t nl = PyTuple_GET_SIZE(lefts), nr = PyTuple_GET_SIZE(rights);
    int by_sentence = distance == Py_None, failed = 1;
    Pairing p = {d, by_sentence ? PyObject_Length(d->tokens) : 0, NULL, 0, NULL, 0, 0};
    if (!by_sentence) {  /* past 64 bits, no gap is too wide (or all are) */
        int overflow = 0;
        long long within = PyLong_AsLongLongAndOverflow(distance, &overflow);
        if (within == -1 && !overflow && PyErr_Occurred()) {
            return -1;
        }
        if (overflow < 0 || (!overflow && within < 1)) {
            return 0;  /* no two words are fewer than 1 apart */
        }
        p.reach = overflow > 0 ? INT64_MAX : within;
    }
    if (p.fields < 0) {
        return -1;
    }
    int64_t(*a)[3] = PyMem_Calloc((size_t)(nl + nr) + 1, sizeof *a);
    p.breaks = by_sentence ? PyMem_Calloc((size_t)p.fields + 1, sizeof(Breaks)) : NULL;
    if (a == NULL || (by_sentence && p.breaks == NULL)) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nl + nr; i++) {
        PyObject *o = i < nl ? PyTuple_GET_ITEM(lefts, i) : PyTuple_GET_ITEM(rights, i - nl);
        if (place_of(o, a[i]) < 0) {
            goto done;
        }
    }
    if (closest(&p, a, nl, a + nl, nr, 0) < 0 || closest(&p, a + nl, nr, a, nl, 1) < 0) {
        goto done;
    }
    for (Py_ssize_t k = 0; k < p.count; k++) {  /* a place's pairs by left, then right */
        p.found[k].order = p.found[k].a * (nr + 1) + p.found[k].b;
    }
    if (p.count > 1) {
        qsort(p.found, (size_t)p.count, sizeof(Found), compare_found);
    }
    Py_ssize_t kept = 0;
    for (Py_ssize_t k = 0; k < p.count; k++) {
        if (kept && !memcmp(p.found[kept - 1].place, p.found[k].place, sizeof p.found[k].place)) {
            continue;  /* one per place: in a chain of NEARs they multiplied */
        }
        p.found[kept++] = p.found[k];
    }
    p.count = kept;
    *out = p.found;
    p.found = NULL;  /* the caller's now */
    failed = 0;

done:
    breaks_free(p.breaks, p.fields);
    PyMem_Free(a);
    PyMem_Free(p.found);
    return failed ? -1 : p.count;
}

/* ``first`` and ``second``, exact tuples, as one (no Python code runs). */
static PyObject *
joined(PyObject *first, PyObject *second)
{
    Py_ssize_t n = PyTuple_GET_SIZE(first), m = PyTuple_GET_SIZE(second);
    PyObject *out = PyTuple_New(n + m);
    for (Py_ssize_t i = 0; out != NULL && i < n + m; i++) {
        PyObject *item = i < n ? PyTuple_GET_ITEM(first, i) : PyTuple_GET_ITEM(second, i - n);
        PyTuple_SET_ITEM(out, i, Py_NewRef(item));
    }
    return out;
}

/* A side's occurrences, as a tuple: what is read later stays, whatever Python code runs
 * meanwhile (the other side's find, a field's sentence breaks). */
static PyObject *
side(const Doc *d, PyObject *node)
{
    PyObject *found = occurrences(d, node);
    PyObject *fixed = found == NULL ? NULL : PyList_AsTuple(found);
    Py_XDECREF(found);
    return fixed;
}

/* Near.find: both sides in one field, close enough, sharing no word, in text order, each
 * with both sides' spans. */
static PyObject *
find_near(const Doc *d, PyObject *node)
{
    PyObject *out = NULL, *rights = NULL, *distance = NULL;
    PyObject *left = attr(node, A_LEFT), *right = attr(node, A_RIGHT);
    PyObject *lefts = left == NULL || right == NULL ? NULL : side(d, left);
    Found *found = NULL;
    if (lefts == NULL) {
        goto done;
    }
    if (PyTuple_GET_SIZE(lefts) == 0) {
        out = PyList_New(0);
        goto done;
    }
    rights = side(d, right);
    distance = rights == NULL ? NULL : attr(node, A_DISTANCE);
    Py_ssize_t count = distance == NULL ? -1 : near_pairs(d, lefts, rights, distance, &found);
    if (count < 0) {
        goto done;
    }
    out = PyList_New(count);
    for (Py_ssize_t k = 0; out != NULL && k < count; k++) {
        /* both checked by place_of: exact 4-tuples ending in an exact tuple */
        PyObject *a = PyTuple_GET_ITEM(lefts, found[k].a), *b = PyTuple_GET_ITEM(rights, found[k].b);
        PyObject *first = PyLong_FromLongLong(found[k].place[1]);
        PyObject *last = first == NULL ? NULL : PyLong_FromLongLong(found[k].place[2]);
        PyObject *spans = last == NULL ? NULL
            : joined(PyTuple_GET_ITEM(a, 3), PyTuple_GET_ITEM(b, 3));
        PyObject *o = spans == NULL ? NULL
            : PyTuple_Pack(4, PyTuple_GET_ITEM(a, 0), first, last, spans);
        Py_XDECREF(first);
        Py_XDECREF(last);
        Py_XDECREF(spans);
        if (o == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, k, o);
    }

done:
    PyMem_Free(found);
    Py_XDECREF(left);
    Py_XDECREF(right);
    Py_XDECREF(lefts);
    Py_XDECREF(rights);
    Py_XDECREF(distance);
    return out;
}

static PyObject *
find_plan(const Doc *d, PyObject *node, int kind)
{
    if (kind == WORDS) {
        PyObject *flag = attr(node, A_CASE);
        int exact = flag == NULL ? -1 : PyObject_IsTrue(flag);
        Py_XDECREF(flag);
        if (exact < 0) {
            return NULL;
        }
        if (!exact) {  /* a case-sensitive word's case is checked in Python */
            return find_words(d, node);
        }
    }
    if (kind == ANY_OF) {
        return find_any_of(d, node);
    }
    if (kind == NEAR) {
        return find_near(d, node);
    }
    return ask(d, node, A_FIND);
}

/* Positional.occurrences: found once per document, in the view's memo. */
static PyObject *
occurrences(const Doc *d, PyObject *node)
{
    PyObject *ident = attr(node, A_IDENT);
    if (ident == NULL) {
        return NULL;
    }
    PyObject *found = PyDict_GetItemWithError(d->memo, ident);
    if (found != NULL) {
        Py_INCREF(found);
    }
    else if (!PyErr_Occurred() && !Py_EnterRecursiveCall(" in plan occurrences")) {
        found = find_plan(d, node, kind_of(d->ev, node));
        Py_LeaveRecursiveCall();
        if (found != NULL && PyDict_SetItem(d->memo, ident, found) < 0) {
            Py_CLEAR(found);
        }
    }
    Py_DECREF(ident);
    if (found != NULL && !PyList_Check(found)) {
        PyErr_SetString(PyExc_TypeError, "occurrences must be a list");
        Py_CLEAR(found);
    }
    return found;
}

/* 1 when ``node`` has an occurrence, 0 when not, -1 on error. */
static int
occurs(const Doc *d, PyObject *node)
{
    PyObject *found = occurrences(d, node);
    if (found == NULL) {
        return -1;
    }
    int any = PyList_GET_SIZE(found) > 0;
    Py_DECREF(found);
    return any;
}

static int holds(const Doc *d, PyObject *node);

/* An AND's items all hold (``every``), or an OR's items any; 1, 0 or -1. */
static int
items_hold(const Doc *d, PyObject *node, int every)
{
    PyObject *items = items_of(node);
    if (items == NULL) {
        return -1;
    }
    int result = every;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(items) && result == every; i++) {
        result = holds(d, PyTuple_GET_ITEM(items, i));
    }
    Py_DECREF(items);
    return result;
}

/* A NOT: 1 when its item does not hold, 0 when it does, -1 on error. */
static int
item_fails(const Doc *d, PyObject *node)
{
    PyObject *item = attr(node, A_ITEM);
    int held = item == NULL ? -1 : holds(d, item);
    Py_XDECREF(item);
    return held < 0 ? -1 : !held;
}

/* Plan.holds; 1, 0 or -1. */
static int
holds(const Doc *d, PyObject *node)
{
    if (Py_EnterRecursiveCall(" in plan holds")) {
        return -1;
    }
    int result, kind = kind_of(d->ev, node);
    if (kind == WORDS || kind == ANY_OF || kind == NEAR) {
        result = occurs(d, node);
    }
    else if (kind == ALL || kind == ANY) {
        result = items_hold(d, node, kind == ALL);
    }
    else if (kind == NEGATION) {
        result = item_fails(d, node);
    }
    else {
        PyObject *held = ask(d, node, A_HOLDS);
        result = held == NULL ? -1 : PyObject_IsTrue(held);
        Py_XDECREF(held);
    }
    Py_LeaveRecursiveCall();
    return result;
}

/* Append every span of ``occurrences`` to ``out``; 0 or -1. */
static int
add_spans(PyObject *found, PyObject *out)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(found); i++) {
        PyObject *spans = occurrence_spans(PyList_GET_ITEM(found, i));
        if (spans == NULL) {
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(spans); j++) {
            if (PyList_Append(out, PyTuple_GET_ITEM(spans, j)) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int add_evidence(const Doc *d, PyObject *node, PyObject *out);

/* An AND's evidence (every item's, or none: what its items added is taken back), or an
 * OR's (the items' that hold); 1, 0 or -1. */
static int
items_evidence(const Doc *d, PyObject *node, int every, PyObject *out)
{
    PyObject *items = items_of(node);
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t start = PyList_GET_SIZE(out);
    int result = every;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(items); i++) {
        int held = add_evidence(d, PyTuple_GET_ITEM(items, i), out);
        if (held < 0 || (every && !held)) {
            result = held;
            break;
        }
        result |= held;
    }
    Py_DECREF(items);
    if (result == 0 && every && PyList_SetSlice(out, start, PyList_GET_SIZE(out), NULL) < 0) {
        return -1;
    }
    return result;
}

/* Plan.evidence: append the spans that make ``node`` hold to ``out`` and give 1, or give
 * 0 when it does not hold (``out`` as it was), or -1 on error. */
static int
add_evidence(const Doc *d, PyObject *node, PyObject *out)
{
    if (Py_EnterRecursiveCall(" in plan evidence")) {
        return -1;
    }
    int result, kind = kind_of(d->ev, node);
    if (kind == WORDS || kind == ANY_OF || kind == NEAR) {
        PyObject *found = occurrences(d, node);
        result = found == NULL ? -1 : PyList_GET_SIZE(found) == 0 ? 0
               : add_spans(found, out) < 0 ? -1 : 1;
        Py_XDECREF(found);
    }
    else if (kind == ALL || kind == ANY) {
        result = items_evidence(d, node, kind == ALL, out);
    }
    else if (kind == NEGATION) {
        result = item_fails(d, node);  /* its evidence is no span */
    }
    else {
        PyObject *spans = ask(d, node, A_EVIDENCE);
        result = spans == NULL ? -1 : spans == Py_None ? 0 : 1;
        if (result == 1) {
            Py_ssize_t end = PyList_GET_SIZE(out);
            result = PyList_SetSlice(out, end, end, spans) < 0 ? -1 : 1;
        }
        Py_XDECREF(spans);
    }
    Py_LeaveRecursiveCall();
    return result;
}

PyDoc_STRVAR(evidence_doc,
"evidence(plan, view, /)\n--\n\n"
"plan.evidence(view): the term spans that make the plan hold, or None.");

static void
doc_close(Doc *d)
{
    Py_CLEAR(d->where);
    Py_CLEAR(d->folded);
    Py_CLEAR(d->memo);
    Py_CLEAR(d->tokens);
}

/* Read the parts of ``view`` the walk uses into ``d``; 0, or -1 with an exception set
 * (``d`` is then closed already). */
static int
doc_open(Doc *d, Evaluator *ev, PyObject *view)
{
    *d = (Doc){ev, view, NULL, NULL, NULL, NULL};
    d->where = attr(view, A_WHERE);
    d->folded = d->where == NULL ? NULL : attr(view, A_FOLDED);
    d->memo = d->folded == NULL ? NULL : attr(view, A_MEMO);
    d->tokens = d->memo == NULL ? NULL : attr(view, A_TOKENS);
    if (d->tokens != NULL && !PyDict_Check(d->memo)) {
        PyErr_SetString(PyExc_TypeError, "a view's memo must be a dict");
    }
    if (PyErr_Occurred()) {
        doc_close(d);
        return -1;
    }
    return 0;
}

/* The spans that make ``node`` hold, or None: a new reference, or NULL on error. */
static PyObject *
evidence_of(const Doc *d, PyObject *node)
{
    PyObject *out = PyList_New(0);
    int held = out == NULL ? -1 : add_evidence(d, node, out);
    if (held <= 0) {
        Py_XSETREF(out, held < 0 ? NULL : Py_NewRef(Py_None));
    }
    return out;
}

static PyObject *
evaluator_evidence(Evaluator *self, PyObject *const *args, Py_ssize_t nargs)
{
    Doc d;
    if (wrong_nargs("evidence", 2, nargs) < 0 || doc_open(&d, self, args[1]) < 0) {
        return NULL;
    }
    PyObject *out = evidence_of(&d, args[0]);
    doc_close(&d);
    return out;
}

static PyObject *
evaluator_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *classes, *stride;
    static char *keywords[] = {"kinds", "stride", NULL};
    Py_ssize_t unused;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O:Evaluator", keywords, &PyTuple_Type,
                                     &classes, &stride)
        || stride_arg(stride, 1, &unused) < 0) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(classes) != KINDS) {
        PyErr_Format(PyExc_TypeError, "kinds must be %d classes", KINDS);
        return NULL;
    }
    for (int k = 0; k < KINDS; k++) {
        if (!PyType_Check(PyTuple_GET_ITEM(classes, k))) {
            PyErr_SetString(PyExc_TypeError, "kinds must be classes");
            return NULL;
        }
    }
    Evaluator *self = (Evaluator *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    for (int k = 0; k < KINDS; k++) {
        self->kinds[k] = Py_NewRef(PyTuple_GET_ITEM(classes, k));
    }
    self->stride = Py_NewRef(stride);
    return (PyObject *)self;
}

static void
evaluator_dealloc(Evaluator *self)
{
    for (int k = 0; k < KINDS; k++) {
        Py_XDECREF(self->kinds[k]);
    }
    Py_XDECREF(self->stride);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef evaluator_methods[] = {
    {"evidence", (PyCFunction)(void (*)(void))evaluator_evidence, METH_FASTCALL, evidence_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EvaluatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.rules._speedups.Evaluator",
    .tp_basicsize = sizeof(Evaluator),
    .tp_dealloc = (destructor)evaluator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR(
        "Evaluator(kinds, stride)\n--\n\n"
        "Evaluates plans of the classes ``kinds`` in C: see plan.PythonEvaluator."),
    .tp_methods = evaluator_methods,
    .tp_new = evaluator_new,
};

/* ---- Matching: each candidate rule's evidence, its terms and its RuleMatch ---- */

typedef struct {
    PyObject_HEAD
    Evaluator *evaluator;
    PyObject *plans, *names;  /* lists, by rule number */
    PyObject *cls;            /* RuleMatch */
    PyObject *make;           /* a term's maker, as matched_terms takes it */
} Matcher;

/* Item ``i`` of ``list`` (a new reference), or NULL with IndexError: Python code that
 * runs during a walk could change the list. */
static PyObject *
rule_item(PyObject *list, Py_ssize_t i)
{
    if (i < 0 || i >= PyList_GET_SIZE(list)) {
        PyErr_Format(PyExc_IndexError, "no rule %zd", i);
        return NULL;
    }
    return Py_NewRef(PyList_GET_ITEM(list, i));
}

/* Rule ``i``'s match in ``d`` (a new reference), None when it does not hold or is not in
 * ``only``, or NULL with an exception set. */
static PyObject *
match_of(Matcher *self, const Doc *d, Py_ssize_t i, PyObject *only, PyObject *made,
         PyObject *make_snippet)
{
    PyObject *name = rule_item(self->names, i), *plan = NULL, *spans = NULL, *terms = NULL;
    PyObject *match = NULL;
    int wanted = name == NULL ? -1 : only == Py_None ? 1 : PySequence_Contains(only, name);
    if (wanted <= 0) {
        match = wanted < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    plan = rule_item(self->plans, i);
    spans = plan == NULL ? NULL : evidence_of(d, plan);
    if (spans == NULL || spans == Py_None) {
        match = spans == NULL ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    PyObject *args[] = {spans, made, self->make, d->view};
    terms = matched_terms(NULL, args, 4);
    if (terms != NULL) {
        static const int names[] = {A_RULE, A_TERMS, A_LAZY_SNIPPET};
        PyObject *values[] = {name, terms, make_snippet};
        match = instance(self->cls, names, values, 3);
    }

done:
    Py_XDECREF(name);
    Py_XDECREF(plan);
    Py_XDECREF(spans);
    Py_XDECREF(terms);
    return match;
}

PyDoc_STRVAR(matches_doc,
"matches(view, candidates, only, make_snippet, /)\n--\n\n"
"The candidate rules' matches in ``view``: see index.PythonMatcher.matches, which this\n"
"is the compiled form of.");

static PyObject *
matcher_matches(Matcher *self, PyObject *const *args, Py_ssize_t nargs)
{
    Doc d;
    if (wrong_nargs("matches", 4, nargs) < 0 || doc_open(&d, self->evaluator, args[0]) < 0) {
        return NULL;
    }
    PyObject *only = args[2], *make_snippet = args[3], *out = NULL;
    PyObject *made = attr(d.view, A_TERMS);
    /* A tuple: the candidates stay as they are whatever Python code the walk runs. */
    PyObject *candidates = made == NULL ? NULL : PySequence_Tuple(args[1]);
    if (candidates != NULL && !PyDict_Check(made)) {
        PyErr_SetString(PyExc_TypeError, "a view's terms must be a dict");
    }
    else if (candidates != NULL) {
        out = PyList_New(0);
    }
    for (Py_ssize_t k = 0; out != NULL && k < PyTuple_GET_SIZE(candidates); k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(candidates, k));
        PyObject *match = i == -1 && PyErr_Occurred()
                              ? NULL
                              : match_of(self, &d, i, only, made, make_snippet);
        if (match == Py_None) {
            Py_DECREF(match);
        }
        else if (append_new(out, match) < 0) {
            Py_CLEAR(out);
        }
    }
    Py_XDECREF(candidates);
    Py_XDECREF(made);
    doc_close(&d);
    return out;
}

static PyObject *
matcher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *evaluator, *plans, *names, *cls, *make;
    static char *keywords[] = {"evaluator", "plans", "names", "cls", "make_term", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!O:Matcher", keywords,
                                     &EvaluatorType, &evaluator, &PyList_Type, &plans,
                                     &PyList_Type, &names, &PyType_Type, &cls, &make)
        || plain_class(cls, "Matcher") < 0) {
        return NULL;
    }
    Matcher *self = (Matcher *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->evaluator = (Evaluator *)Py_NewRef(evaluator);
        self->plans = Py_NewRef(plans);
        self->names = Py_NewRef(names);
        self->cls = Py_NewRef(cls);
        self->make = Py_NewRef(make);
    }
    return (PyObject *)self;
}

static void
matcher_dealloc(Matcher *self)
{
    Py_XDECREF(self->evaluator);
    Py_XDECREF(self->plans);
    Py_XDECREF(self->names);
    Py_XDECREF(self->cls);
    Py_XDECREF(self->make);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef matcher_methods[] = {
    {"matches", (PyCFunction)(void (*)(void))matcher_matches, METH_FASTCALL, matches_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.rules._speedups.Matcher",
    .tp_basicsize = sizeof(Matcher),
    .tp_dealloc = (destructor)matcher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR(
        "Matcher(evaluator, plans, names, cls, make_term)\n--\n\n"
        "Matches candidate rules in C: see index.PythonMatcher."),
    .tp_methods = matcher_methods,
    .tp_new = matcher_new,
};

static PyMethodDef methods[] = {
    {"split_plain", (PyCFunction)(void (*)(void))split_plain, METH_FASTCALL, split_plain_doc},
    {"place", (PyCFunction)(void (*)(void))place, METH_FASTCALL, place_doc},
    {"word_occurrences", (PyCFunction)(void (*)(void))word_occurrences, METH_FASTCALL,
     word_occurrences_doc},
    {"phrase_occurrences", (PyCFunction)(void (*)(void))phrase_occurrences, METH_FASTCALL,
     phrase_occurrences_doc},
    {"matched_terms", (PyCFunction)(void (*)(void))matched_terms, METH_FASTCALL,
     matched_terms_doc},
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
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    for (int i = 0; i < NAMES; i++) {
        if (attr_names[i] == NULL
            && (attr_names[i] = PyUnicode_InternFromString(name_texts[i])) == NULL) {
            Py_DECREF(m);
            return NULL;
        }
    }
    /* readies the types; Python 3.10+ */
    if (PyModule_AddType(m, &GathererType) < 0 || PyModule_AddType(m, &EvaluatorType) < 0
        || PyModule_AddType(m, &TermMakerType) < 0 || PyModule_AddType(m, &MatcherType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
