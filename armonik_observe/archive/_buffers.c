/* Python columns to Arrow buffers: the archive's hot conversions, without a Python object
 * per value.
 *
 * pyarrow converts a list of str at about 50 ns a value on the machines we measure, and list
 * columns at 50 to 130 ns a row; the archive's task rows hold some twenty such values each.
 * Here a value costs a type check, a pointer read and a memcpy. Each function returns bytes
 * objects laid out as Arrow buffers (int32 offsets, UTF-8 data, validity bitmaps), which
 * pyarrow wraps without copying. `armonik_observe.archive.columns` is the Python side, with a
 * pure-pyarrow fallback when this module is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *data;
    Py_ssize_t size;
} Text;

/* Growable array of (pointer, size) of the UTF-8 values seen so far. */
typedef struct {
    Text *items;
    Py_ssize_t count;
    Py_ssize_t capacity;
    Py_ssize_t bytes;
} Texts;

static int texts_push(Texts *texts, PyObject *value) {
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t size;
    /* The UTF-8 form is cached in the str (free for ASCII), so it lives as long as the list. */
    const char *data = PyUnicode_AsUTF8AndSize(value, &size);
    if (data == NULL) {
        return -1;
    }
    if (texts->count == texts->capacity) {
        Py_ssize_t capacity = texts->capacity ? 2 * texts->capacity : 1024;
        Text *grown = PyMem_Realloc(texts->items, (size_t)capacity * sizeof(Text));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        texts->items = grown;
        texts->capacity = capacity;
    }
    texts->items[texts->count].data = data;
    texts->items[texts->count].size = size;
    texts->count++;
    texts->bytes += size;
    if (texts->bytes > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "over 2 GiB of strings in one Arrow array");
        return -1;
    }
    return 0;
}

/* (offsets, data) of an Arrow utf8 array holding the texts. */
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
    int32_t position = 0;
    offset[0] = 0;
    for (Py_ssize_t i = 0; i < texts->count; i++) {
        memcpy(out + position, texts->items[i].data, (size_t)texts->items[i].size);
        position += (int32_t)texts->items[i].size;
        offset[i + 1] = position;
    }
    return Py_BuildValue("(NN)", offsets, data);
}

/* A column held in parts (a list of lists: pages of rows), walked as one sequence of values. */
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

/* The next value (borrowed), or NULL with RuntimeError if the parts shrank meanwhile. */
static PyObject *rows_next(Rows *rows) {
    while (rows->part < PyList_GET_SIZE(rows->parts)) {
        PyObject *part = PyList_GET_ITEM(rows->parts, rows->part);
        if (rows->index < PyList_GET_SIZE(part)) {
            return PyList_GET_ITEM(part, rows->index++);
        }
        rows->part++;
        rows->index = 0;
    }
    PyErr_SetString(PyExc_RuntimeError, "the column changed while it was converted");
    return NULL;
}

PyDoc_STRVAR(utf8_doc,
"utf8(parts: list[list[str]]) -> (offsets, data)\n\n"
"The buffers of an Arrow utf8 array of the parts' values: int32 offsets and UTF-8 data.");

static PyObject *utf8(PyObject *module, PyObject *parts) {
    Py_ssize_t n = rows_count(parts);
    if (n < 0) {
        return NULL;
    }
    Rows rows = {parts, 0, 0};
    Texts texts = {NULL, 0, 0, 0};
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = rows_next(&rows);
        if (value == NULL || texts_push(&texts, value) < 0) {
            goto done;
        }
    }
    result = texts_buffers(&texts);
done:
    PyMem_Free(texts.items);
    return result;
}

PyDoc_STRVAR(utf8_lists_doc,
"utf8_lists(parts: list[list[tuple[str, ...] | list[str] | None]]) -> "
"(validity, offsets, value_offsets, data, null_count)\n\n"
"The buffers of an Arrow list<utf8> array: validity is None when no row is None.");

static PyObject *utf8_lists(PyObject *module, PyObject *parts) {
    Py_ssize_t n = rows_count(parts);
    if (n < 0) {
        return NULL;
    }
    Rows rows = {parts, 0, 0};
    Texts texts = {NULL, 0, 0, 0};
    PyObject *validity = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *result = NULL;
    if (validity == NULL || offsets == NULL) {
        goto done;
    }
    uint8_t *valid = (uint8_t *)PyBytes_AS_STRING(validity);
    int32_t *offset = (int32_t *)PyBytes_AS_STRING(offsets);
    memset(valid, 0, (size_t)((n + 7) / 8));
    Py_ssize_t nulls = 0;
    offset[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = rows_next(&rows);
        if (row == NULL) {
            goto done;
        }
        if (row == Py_None) {
            nulls++;
        } else if (PyTuple_Check(row) || PyList_Check(row)) {
            valid[i / 8] |= (uint8_t)(1u << (i % 8));
            Py_ssize_t size = PySequence_Fast_GET_SIZE(row);
            PyObject **items = PySequence_Fast_ITEMS(row);
            for (Py_ssize_t j = 0; j < size; j++) {
                if (texts_push(&texts, items[j]) < 0) {
                    goto done;
                }
            }
        } else {
            PyErr_Format(PyExc_TypeError, "expected a tuple or list of str, got %.100s",
                         Py_TYPE(row)->tp_name);
            goto done;
        }
        offset[i + 1] = (int32_t)texts.count;
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
    PyMem_Free(texts.items);
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
    if (index == NULL || distinct == NULL || positions == NULL) {
        goto done;
    }
    int32_t *position = (int32_t *)PyBytes_AS_STRING(positions);
    PyObject *previous = NULL;
    int32_t previous_position = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = rows_next(&rows);
        if (value == NULL) {
            goto done;
        }
        if (value != previous) {
            PyObject *known = PyDict_GetItemWithError(index, value);  /* borrowed */
            if (known != NULL) {
                previous_position = (int32_t)PyLong_AsLong(known);
            } else if (PyErr_Occurred()) {
                goto done;  /* unhashable */
            } else {
                previous_position = (int32_t)PyList_GET_SIZE(distinct);
                PyObject *number = PyLong_FromLong(previous_position);
                if (number == NULL || PyDict_SetItem(index, value, number) < 0 ||
                    PyList_Append(distinct, value) < 0) {
                    Py_XDECREF(number);
                    goto done;
                }
                Py_DECREF(number);
            }
            previous = value;
        }
        position[i] = previous_position;
    }
    result = Py_BuildValue("(OO)", positions, distinct);
done:
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
