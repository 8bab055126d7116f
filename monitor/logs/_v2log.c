/*
 * monitor.logs._v2log: nnU-Net v2 log text -> per-epoch columns in one pass over the lines, by the rules of
 * monitor/logs/v2.py, whose line reader the tests hold it to bit for bit.  Numbers are what float() makes of
 * the text (plain decimals and "nan" converted here, the rest by float()); "Epoch time" timestamps not in
 * str(datetime)'s fixed width are left NaT for the caller.  The buffer is only read, within bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { START, LR, TRAIN, VAL, TIME, DICE, CODES };
enum { TIMESTAMP_WIDTH = 26, MAX_ITEM = 32, MAX_FAST_DIGITS = 15 };

/* Tested in this order; a later match wins ("Epoch time: " also starts with "Epoch "). */
static const struct {
    int code;
    const char *key;
    Py_ssize_t len;
} KEYS[] = {
    {START, "Epoch ", 6}, {TIME, "Epoch time: ", 12}, {LR, "Current learning rate: ", 23},
    {TRAIN, "train_loss ", 11}, {VAL, "val_loss ", 9}, {DICE, "Pseudo dice [", 13},
};

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16};

typedef struct {
    char *bytes;
    Py_ssize_t len, cap;
} Buffer;

static int append(Buffer *b, const void *src, Py_ssize_t size)
{
    if (b->len + size > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + size)
            cap *= 2;
        char *bytes = PyMem_Realloc(b->bytes, (size_t)cap);
        if (bytes == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->bytes = bytes;
        b->cap = cap;
    }
    memcpy(b->bytes + b->len, src, (size_t)size);
    b->len += size;
    return 0;
}

/* float(text) for text[0:len], NaN with *readable = 0 where float() raises ValueError; -1 on other errors. */
static int parse_number(const char *text, Py_ssize_t len, double *out, int *readable)
{
    *readable = 1;
    Py_ssize_t i = len > 0 && (text[0] == '-' || text[0] == '+');
    double mantissa = 0.0;
    int digits = 0, decimals = 0, dots = 0, plain = 1;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= '0' && c <= '9') {
            mantissa = mantissa * 10.0 + (c - '0');
            digits++;
            decimals += dots > 0;
        } else if (c == '.') {
            dots++;
        } else {
            plain = 0;
            break;
        }
    }
    if (plain && dots <= 1 && digits >= 1 && digits <= MAX_FAST_DIGITS) {
        double value = mantissa / POW10[decimals];
        *out = len > 0 && text[0] == '-' ? -value : value;
        return 0;
    }
    if (len == 3 && (text[0] | 0x20) == 'n' && (text[1] | 0x20) == 'a' && (text[2] | 0x20) == 'n') {
        *out = Py_NAN;
        return 0;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(text, len);
    PyObject *number = bytes ? PyFloat_FromString(bytes) : NULL;
    Py_XDECREF(bytes);
    if (number == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return -1;
        PyErr_Clear();
        *out = Py_NAN;
        *readable = 0;
        return 0;
    }
    *out = PyFloat_AS_DOUBLE(number);
    Py_DECREF(number);
    return 0;
}

/* Microseconds since 1970 of the "YYYY-MM-DD HH:MM:SS.ffffff" at text (26 bytes, proleptic Gregorian, as numpy
 * reads it), or INT64_MIN where the text is not such a valid date and time. */
static int64_t timestamp_us(const char *text)
{
    static const char shape[] = "0000-00-00 00:00:00.000000";
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t f[7] = {0}; /* year, month, day, hour, minute, second, microsecond */
    for (int i = 0, k = 0; i < TIMESTAMP_WIDTH; i++) {
        if (shape[i] == '0' && text[i] >= '0' && text[i] <= '9')
            f[k] = f[k] * 10 + (text[i] - '0');
        else if (shape[i] != '0' && text[i] == shape[i])
            k++;
        else
            return INT64_MIN;
    }
    int64_t y = f[0], m = f[1], leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m < 1 || m > 12 || f[2] < 1 || f[2] > month_days[m - 1] + (m == 2 && leap) || f[3] > 23 || f[4] > 59 ||
        f[5] > 59)
        return INT64_MIN;
    y -= m <= 2; /* days since 1970-01-01 counted from March, in 400-year eras (H. Hinnant's days_from_civil) */
    int64_t era = (y >= 0 ? y : y - 399) / 400, year_of_era = y - era * 400;
    int64_t day_of_year = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + f[2] - 1;
    int64_t days = era * 146097 + year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year - 719468;
    return (((days * 24 + f[3]) * 60 + f[4]) * 60 + f[5]) * 1000000 + f[6];
}

static int stops_token(unsigned char c)
{
    return c == ' ' || (c >= 9 && c <= 13) || c == 0 || c == ',' || c == ']';
}

/* Per block, in file order; the layout of monitor/logs/v2.py's _BLOCK dtype. */
typedef struct {
    int64_t epoch, line_start, end_line, end_message, end_us; /* end_us: NaT (INT64_MIN) where not converted */
    double scalar[TIME]; /* LR, TRAIN, VAL, TIME by code - 1 */
    int64_t dice_at, dice_count; /* into the dice values; dice_count -1: no readable list */
} Block;

typedef struct {
    const char *buf;
    Py_ssize_t n;
    Buffer blocks;  /* Block */
    Buffer dice;    /* double: the items of every readable list, in file order */
    Py_ssize_t garbled;
    Py_ssize_t unconverted; /* "Epoch time" lines whose timestamp is left to the caller */
} Parse;

/* A "Pseudo dice [" list in [begin, end); the block's list is replaced if it reads. */
static int dice_list(Parse *p, Block *block, Py_ssize_t begin, Py_ssize_t end)
{
    const char *buf = p->buf;
    Py_ssize_t close = end - 1;
    while (close >= begin && buf[close] != ']')
        close--;
    if (close < begin) {
        p->garbled++;
        return 0;
    }
    Py_ssize_t first = p->dice.len, count = 0; /* bytes */
    int readable = 1;
    for (Py_ssize_t at = begin; readable;) {
        const char *comma = memchr(buf + at, ',', (size_t)(close - at));
        Py_ssize_t stop = comma ? comma - buf : close, a = at, b = stop;
        while (a < b && buf[a] == ' ')
            a++;
        while (b > a && buf[b - 1] == ' ')
            b--;
        if (b - a > 11 && memcmp(buf + a, "np.float", 8) == 0 && buf[a + 8] >= '0' && buf[a + 8] <= '9' &&
            buf[a + 9] >= '0' && buf[a + 9] <= '9' && buf[a + 10] == '(' && buf[b - 1] == ')') {
            a += 11;
            b -= 1;
        }
        if (comma == NULL && count == 0 && a == b) /* "[]": no class */
            break;
        double value = Py_NAN;
        if (b - a > MAX_ITEM)
            readable = 0;
        else if (parse_number(buf + a, b - a, &value, &readable) < 0)
            return -1;
        if (append(&p->dice, &value, sizeof(value)) < 0)
            return -1;
        count++;
        if (comma == NULL)
            break;
        at = stop + 1;
    }
    if (!readable) {
        p->dice.len = first;
        p->garbled++;
        return 0;
    }
    block->dice_at = first / (Py_ssize_t)sizeof(double);
    block->dice_count = count;
    return 0;
}

static int parse_lines(Parse *p)
{
    const char *buf = p->buf;
    Py_ssize_t n = p->n;
    for (Py_ssize_t start = 0; start < n;) {
        const char *newline = memchr(buf + start, '\n', (size_t)(n - start));
        if (newline == NULL) /* a line still being written: the caller passes whole lines only */
            break;
        Py_ssize_t end = newline - buf, message = -1;
        if (start + TIMESTAMP_WIDTH + 2 <= end && buf[start + TIMESTAMP_WIDTH] == ':' &&
            buf[start + TIMESTAMP_WIDTH + 1] == ' ') {
            message = start + TIMESTAMP_WIDTH + 2;
        } else {
            for (Py_ssize_t at = start; at + 2 <= end; at++)
                if (buf[at] == ':' && buf[at + 1] == ' ') {
                    message = at + 2;
                    break;
                }
        }
        int code = -1;
        Py_ssize_t key_len = 0;
        for (size_t k = 0; message >= 0 && k < sizeof(KEYS) / sizeof(KEYS[0]); k++)
            if (message + KEYS[k].len <= end && memcmp(buf + message, KEYS[k].key, (size_t)KEYS[k].len) == 0) {
                code = KEYS[k].code;
                key_len = KEYS[k].len;
            }
        if (code == START) {
            Block fresh = {.epoch = -1, .line_start = start, .end_line = -1, .end_message = -1,
                           .end_us = INT64_MIN, .dice_count = -1};
            for (int i = 0; i < TIME; i++)
                fresh.scalar[i] = Py_NAN;
            if (append(&p->blocks, &fresh, sizeof(fresh)) < 0)
                return -1;
        }
        Block *block = p->blocks.len ? (Block *)(p->blocks.bytes + p->blocks.len) - 1 : NULL; /* the last */
        if (code >= 0 && block != NULL) {
            Py_ssize_t begin = message + key_len;
            if (code == DICE) {
                if (dice_list(p, block, begin, end) < 0)
                    return -1;
            } else {
                Py_ssize_t stop = begin;
                while (stop < end && !stops_token((unsigned char)buf[stop]))
                    stop++;
                double value;
                int readable;
                if (parse_number(buf + begin, stop - begin, &value, &readable) < 0)
                    return -1;
                if (code == START) {
                    int whole = isfinite(value) && value >= 0 && value < 9223372036854775808.0 && value == floor(value);
                    block->epoch = whole ? (int64_t)value : -1; /* an epoch number beyond int64 is garbled */
                } else {
                    block->scalar[code - 1] = value;
                }
                if (code == TIME) {
                    block->end_line = start;
                    block->end_message = message;
                    block->end_us = message == start + TIMESTAMP_WIDTH + 2 ? timestamp_us(buf + start) : INT64_MIN;
                    p->unconverted += block->end_us == INT64_MIN;
                }
            }
        }
        start = end + 1;
    }
    return 0;
}

/* The Dice matrix (blocks x classes, NaN-padded) and the number of classes. */
static PyObject *dice_matrix(Parse *p, Py_ssize_t *classes)
{
    Py_ssize_t count = p->blocks.len / (Py_ssize_t)sizeof(Block), width = 0;
    Block *blocks = (Block *)p->blocks.bytes;
    for (Py_ssize_t i = 0; i < count; i++)
        if (blocks[i].dice_count > width)
            width = blocks[i].dice_count;
    PyObject *out = PyByteArray_FromStringAndSize(NULL, count * width * (Py_ssize_t)sizeof(double));
    if (out == NULL)
        return NULL;
    double *matrix = (double *)PyByteArray_AS_STRING(out);
    const double *values = (const double *)p->dice.bytes;
    for (Py_ssize_t i = 0; i < count; i++)
        for (Py_ssize_t k = 0; k < width; k++)
            matrix[i * width + k] = k < blocks[i].dice_count ? values[blocks[i].dice_at + k] : Py_NAN;
    *classes = width;
    return out;
}

PyDoc_STRVAR(blocks_doc,
"blocks(buf) -> (blocks, dice, classes, garbled_dice, unconverted)\n\n"
"Per-epoch columns of whole v2 log lines: one Block record per 'Epoch N' line, the blocks x classes\n"
"float64 Dice matrix (NaN-padded); unconverted counts timestamps left NaT for the caller.");

static PyObject *blocks(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Parse p = {.buf = view.buf, .n = view.len};
    PyObject *result = NULL;
    Py_ssize_t classes = 0;
    if (parse_lines(&p) == 0) {
        PyObject *records = PyByteArray_FromStringAndSize(p.blocks.bytes ? p.blocks.bytes : "", p.blocks.len);
        PyObject *dice = records ? dice_matrix(&p, &classes) : NULL;
        if (dice != NULL)
            result = Py_BuildValue("(NNnnn)", records, dice, classes, p.garbled, p.unconverted);
        else
            Py_XDECREF(records);
    }
    PyMem_Free(p.blocks.bytes);
    PyMem_Free(p.dice.bytes);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"blocks", blocks, METH_O, blocks_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_v2log", "nnU-Net v2 log text -> per-epoch columns (see monitor.logs.v2).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__v2log(void)
{
    return PyModule_Create(&module_def);
}
