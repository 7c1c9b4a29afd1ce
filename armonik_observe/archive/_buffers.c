/* Python columns to Arrow buffers: the archive's hot conversions, without a Python object
 * per value.
 *
 * pyarrow converts a list of str at about 50 ns a value on the machines we measure, and list
 * columns at 50 to 130 ns a row; the archive's task rows hold some twenty such values each.
 * Here a value costs a type check, a pointer read and a memcpy, mostly without the GIL. Each
 * function returns bytes objects laid out as Arrow buffers (int32 offsets, UTF-8 data, validity
 * bitmaps), which pyarrow wraps without copying. `armonik_observe.archive.columns` is the Python side, with a
 * pure-pyarrow fallback when this module is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *data; /* NULL until read: texts_resolve reads what texts_note could not */
    Py_ssize_t size;
    PyObject *value;
} Text;

/* Growable array of the str values seen so far, with their UTF-8 once read. */
typedef struct {
    Text *items;
    Py_ssize_t count;
    Py_ssize_t capacity;
    Py_ssize_t bytes;
    Py_ssize_t unread; /* values texts_note left to texts_resolve */
} Texts;

/* Without the GIL: note a value. A compact ASCII str (nearly every value) is read in place;
 * anything else waits for texts_resolve. Returns -1 only when memory runs out. */
static int texts_note(Texts *texts, PyObject *value) {
    if (texts->count == texts->capacity) {
        Py_ssize_t capacity = texts->capacity ? 2 * texts->capacity : 4096;
        Text *grown = PyMem_RawRealloc(texts->items, (size_t)capacity * sizeof(Text));
        if (grown == NULL) {
            return -1;
        }
        texts->items = grown;
        texts->capacity = capacity;
    }
    Text *text = &texts->items[texts->count++];
    text->value = value;
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_COMPACT_ASCII(value)) {
        text->data = (const char *)PyUnicode_DATA(value);
        text->size = PyUnicode_GET_LENGTH(value);
        texts->bytes += text->size;
    } else {
        text->data = NULL;
        text->size = 0;
        texts->unread++;
    }
    return 0;
}

/* With the GIL: read the values texts_note left (TypeError unless str), check the size. */
static int texts_resolve(Texts *texts) {
    for (Py_ssize_t i = 0; texts->unread > 0 && i < texts->count; i++) {
        Text *text = &texts->items[i];
        if (text->data != NULL) {
            continue;
        }
        if (!PyUnicode_Check(text->value)) {
            PyErr_Format(PyExc_TypeError, "expected str, got %.100s",
                         Py_TYPE(text->value)->tp_name);
            return -1;
        }
        /* The UTF-8 form is cached in the str, so it lives as long as the column. */
        text->data = PyUnicode_AsUTF8AndSize(text->value, &text->size);
        if (text->data == NULL) {
            return -1;
        }
        texts->bytes += text->size;
        texts->unread--;
    }
    if (texts->bytes > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "over 2 GiB of strings in one Arrow array");
        return -1;
    }
    return 0;
}

/* (offsets, data) of an Arrow utf8 array holding the texts; copies without the GIL. */
static PyObject *texts_buffers(const Texts *texts) {
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (texts->count + 1) * 4);
    PyObject *data = PyBytes_FromStringAndSize(NULL, texts->bytes);
    if (offsets == NULL || data == NULL) {
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        return NULL;
    }
    int32_t *offset = (int32_t *)PyBytes_AS_STRING(offsets);
    char *out = PyBytes_AS_STRING(data);
    Py_BEGIN_ALLOW_THREADS
    int32_t position = 0;
    offset[0] = 0;
    for (Py_ssize_t i = 0; i < texts->count; i++) {
        memcpy(out + position, texts->items[i].data, (size_t)texts->items[i].size);
        position += (int32_t)texts->items[i].size;
        offset[i + 1] = position;
    }
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(NN)", offsets, data);
}

/* A column held in parts (a list of lists: pages of rows), walked as one sequence of values.
 *
 * utf8 and utf8_lists walk it without the GIL: the event loop's thread then never waits for
 * the memory reads that make most of a conversion's time. That is only safe because the caller
 * owns the lists and their values, which nothing changes during the call (the archive's worker
 * converts pages that no other code holds). indices runs values' __hash__ and __eq__, which may
 * change the lists: it holds the value it works on, and stops if the parts shrank. */
typedef struct {
    PyObject *parts;
    Py_ssize_t part;
    Py_ssize_t index;
} Rows;

/* The number of values in all parts, or -1 with TypeError unless parts is a list of lists. */
static Py_ssize_t rows_count(PyObject *parts) {
    if (!PyList_Check(parts)) {
        PyErr_Format(PyExc_TypeError, "expected a list of lists, got %.100s",
                     Py_TYPE(parts)->tp_name);
        return -1;
    }
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        if (!PyList_Check(part)) {
            PyErr_Format(PyExc_TypeError, "expected a list of lists, got a list of %.100s",
                         Py_TYPE(part)->tp_name);
            return -1;
        }
        count += PyList_GET_SIZE(part);
    }
    return count;
}

/* The next value (borrowed), or NULL if the parts shrank meanwhile (no exception set: the
 * caller may not hold the GIL; see shrunk). */
static PyObject *rows_next(Rows *rows) {
    while (rows->part < PyList_GET_SIZE(rows->parts)) {
        PyObject *part = PyList_GET_ITEM(rows->parts, rows->part);
        if (rows->index < PyList_GET_SIZE(part)) {
            return PyList_GET_ITEM(part, rows->index++);
        }
        rows->part++;
        rows->index = 0;
    }
    return NULL;
}

static void shrunk(void) {
    PyErr_SetString(PyExc_RuntimeError, "the column changed while it was converted");
}

/* Outcomes of a walk without the GIL, raised once it is held again. */
enum { WALKED = 0, OUT_OF_MEMORY, SHRUNK, NOT_A_LIST_OF_STR };

/* With the GIL: raise what a walk ran into; -1 if it did, 0 if it walked every value.
 * `culprit` is the row a NOT_A_LIST_OF_STR walk stopped at. */
static int walk_failed(int walk, PyObject *culprit) {
    switch (walk) {
    case WALKED:
        return 0;
    case SHRUNK:
        shrunk();
        break;
    case OUT_OF_MEMORY:
        PyErr_NoMemory();
        break;
    default:
        PyErr_Format(PyExc_TypeError, "expected a tuple or list of str, got %.100s",
                     Py_TYPE(culprit)->tp_name);
    }
    return -1;
}

PyDoc_STRVAR(utf8_doc,
"utf8(parts: list[list[str]]) -> (offsets, data)\n\n"
"The buffers of an Arrow utf8 array of the parts' values: int32 offsets and UTF-8 data.\n"
"The lists must not change during the call: they are read without the GIL.");

static PyObject *utf8(PyObject *module, PyObject *parts) {
    Py_ssize_t n = rows_count(parts);
    if (n < 0) {
        return NULL;
    }
    Rows rows = {parts, 0, 0};
    Texts texts = {NULL, 0, 0, 0, 0};
    PyObject *result = NULL;
    int walk = WALKED;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && walk == WALKED; i++) {
        PyObject *value = rows_next(&rows);
        if (value == NULL) {
            walk = SHRUNK;
        } else if (texts_note(&texts, value) < 0) {
            walk = OUT_OF_MEMORY;
        }
    }
    Py_END_ALLOW_THREADS
    if (walk_failed(walk, NULL) == 0 && texts_resolve(&texts) == 0) {
        result = texts_buffers(&texts);
    }
    PyMem_RawFree(texts.items);
    return result;
}

PyDoc_STRVAR(utf8_lists_doc,
"utf8_lists(parts: list[list[tuple[str, ...] | list[str] | None]]) -> "
"(validity, offsets, value_offsets, data, null_count)\n\n"
"The buffers of an Arrow list<utf8> array: validity is None when no row is None.\n"
"The lists must not change during the call: they are read without the GIL.");

static PyObject *utf8_lists(PyObject *module, PyObject *parts) {
    Py_ssize_t n = rows_count(parts);
    if (n < 0) {
        return NULL;
    }
    Rows rows = {parts, 0, 0};
    Texts texts = {NULL, 0, 0, 0, 0};
    PyObject *validity = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *result = NULL;
    PyObject *bad_row = NULL;
    if (validity == NULL || offsets == NULL) {
        goto done;
    }
    uint8_t *valid = (uint8_t *)PyBytes_AS_STRING(validity);
    int32_t *offset = (int32_t *)PyBytes_AS_STRING(offsets);
    Py_ssize_t nulls = 0;
    int walk = WALKED;
    Py_BEGIN_ALLOW_THREADS
    memset(valid, 0, (size_t)((n + 7) / 8));
    offset[0] = 0;
    for (Py_ssize_t i = 0; i < n && walk == WALKED; i++) {
        PyObject *row = rows_next(&rows);
        if (row == NULL) {
            walk = SHRUNK;
        } else if (row == Py_None) {
            nulls++;
        } else if (PyTuple_Check(row) || PyList_Check(row)) {
            valid[i / 8] |= (uint8_t)(1u << (i % 8));
            Py_ssize_t size = PySequence_Fast_GET_SIZE(row);
            PyObject **items = PySequence_Fast_ITEMS(row);
            for (Py_ssize_t j = 0; j < size && walk == WALKED; j++) {
                if (texts_note(&texts, items[j]) < 0) {
                    walk = OUT_OF_MEMORY;
                }
            }
        } else {
            bad_row = row;
            walk = NOT_A_LIST_OF_STR;
        }
        offset[i + 1] = (int32_t)texts.count;
    }
    Py_END_ALLOW_THREADS
    if (walk_failed(walk, bad_row) < 0) {
        goto done;
    }
    if (texts.count > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "over 2**31 strings in one Arrow list array");
        goto done;
    }
    if (texts_resolve(&texts) < 0) {
        goto done;
    }
    PyObject *strings = texts_buffers(&texts);
    if (strings == NULL) {
        goto done;
    }
    if (nulls == 0) {
        Py_SETREF(validity, Py_NewRef(Py_None));
    }
    result = Py_BuildValue("(OOOOn)", validity, offsets, PyTuple_GET_ITEM(strings, 0),
                           PyTuple_GET_ITEM(strings, 1), nulls);
    Py_DECREF(strings);
done:
    Py_XDECREF(validity);
    Py_XDECREF(offsets);
    PyMem_RawFree(texts.items);
    return result;
}

PyDoc_STRVAR(indices_doc,
"indices(parts: list[list]) -> (indices, distinct)\n\n"
"int32 indices into `distinct`, the values without repeats (by equality, in first-seen order).\n"
"A value that is the very object of the row before costs no hashing.");

static PyObject *indices(PyObject *module, PyObject *parts) {
    Py_ssize_t n = rows_count(parts);
    if (n < 0) {
        return NULL;
    }
    Rows rows = {parts, 0, 0};
    PyObject *index = PyDict_New();
    PyObject *distinct = PyList_New(0);
    PyObject *positions = PyBytes_FromStringAndSize(NULL, n * 4);
    PyObject *result = NULL;
    PyObject *previous = NULL;  /* strong: identity is only meaningful while it lives */
    if (index == NULL || distinct == NULL || positions == NULL) {
        goto done;
    }
    int32_t *position = (int32_t *)PyBytes_AS_STRING(positions);
    int32_t previous_position = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = rows_next(&rows);
        if (value == NULL) {
            shrunk();
            goto done;
        }
        if (value != previous) {
            /* __hash__/__eq__ run Python code that may change the parts: hold the value */
            Py_INCREF(value);
            Py_XSETREF(previous, value);
            PyObject *known = PyDict_GetItemWithError(index, value);  /* borrowed */
            if (known != NULL) {
                previous_position = (int32_t)PyLong_AsLong(known);
            } else if (PyErr_Occurred()) {
                goto done;  /* unhashable */
            } else {
                if (PyList_GET_SIZE(distinct) >= INT32_MAX) {
                    PyErr_SetString(PyExc_OverflowError, "over 2**31 distinct values");
                    goto done;
                }
                previous_position = (int32_t)PyList_GET_SIZE(distinct);
                PyObject *number = PyLong_FromLong(previous_position);
                if (number == NULL || PyDict_SetItem(index, value, number) < 0 ||
                    PyList_Append(distinct, value) < 0) {
                    Py_XDECREF(number);
                    goto done;
                }
                Py_DECREF(number);
            }
        }
        position[i] = previous_position;
    }
    result = Py_BuildValue("(OO)", positions, distinct);
done:
    Py_XDECREF(previous);
    Py_XDECREF(index);
    Py_XDECREF(distinct);
    Py_XDECREF(positions);
    return result;
}

static PyMethodDef methods[] = {
    {"utf8", utf8, METH_O, utf8_doc},
    {"utf8_lists", utf8_lists, METH_O, utf8_lists_doc},
    {"indices", indices, METH_O, indices_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "armonik_observe.archive._buffers",
    "Python columns to Arrow buffers, without a Python object per value.",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__buffers(void) {
    return PyModule_Create(&module);
}
