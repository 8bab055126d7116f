/*
 * monitor.checkpoints._scalar_runs: the checkpoint reader's compiled pass, one exact walk over data.pkl,
 * opcode by opcode as the unpickler would, writing what the unpickler should read instead:
 *
 *   - every run of numpy float scalars (the exact 15-opcode template of a scalar whose function, dtype and
 *     codec are memoised, joined across the connectors a pickler writes between list items and rows), and
 *     every batch of python floats after a MARK that follows such a run, becomes one 16-byte BINBYTES
 *     (the caller's random 12-byte tag plus the run id); the values go, decoded, into one float64 array;
 *   - every tensor record (_rebuild_tensor_v2 of a storage's persistent id) that names no global and lies
 *     in the value of a top-level weights or optimizer key becomes None (a model of the stack says where);
 *   - memo indices are renumbered densely; a GET of a hidden scalar becomes its value, a BINFLOAT.
 *
 * Everything else is copied, so every global still reaches the caller's restricted unpickler; nothing is
 * interpreted or called here.  At STOP the object becomes (object, (dtype, ...)): the dtype of every hidden
 * scalar, as the unpickler builds it, for the caller to verify.  Anything unexpected (unknown opcode, a memo
 * index redefined, fetched before definition or beyond the pickle's size, a GET of a hidden non-scalar,
 * truncation, no STOP) declines (None) and the caller reads the bytes plainly.  Every read is bounds-checked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    OP_MARK = '(', OP_STOP = '.', OP_BINFLOAT = 'G', OP_BINUNICODE = 'X', OP_APPENDS = 'e',
    OP_BINGET = 'h', OP_LONG_BINGET = 'j', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r',
    OP_TUPLE2 = 0x86, OP_REDUCE = 'R', OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d,
    SCALAR_FIXED = 54,     /* bytes of a templated scalar besides its payload */
    MAX_DTYPES = 8,
    TAG_BYTES = 12,
    MARKER_BYTES = 21,     /* BINBYTES, 4-byte length 16, tag, 4-byte run id */
};

/* What a templated scalar and a tensor record fetch from the memo, recognised by the opcode that pushes them. */
enum { FN, ENCODE, LATIN1, REBUILD, NAMES };
static const struct {
    const char *bytes;
    Py_ssize_t len;
    int name;
} NAME_OPCODES[] = {
    {"cnumpy._core.multiarray\nscalar\n", 31, FN},
    {"cnumpy.core.multiarray\nscalar\n", 30, FN},
    {"c_codecs\nencode\n", 16, ENCODE},
    {"X\x06\x00\x00\x00latin1", 11, LATIN1},
    {"ctorch._utils\n_rebuild_tensor_v2\n", 33, REBUILD},
};

/* Memo map, per original index: 0 undefined, > 0 visible with new index v - 1, HIDDEN a hidden non-scalar,
 * IN_RECORD defined by a hidden tensor record (only other records may fetch it: shared weights),
 * <= SCALAR_BASE a hidden scalar with value index SCALAR_BASE - v. */
#define HIDDEN (-1)
#define IN_RECORD (-2)
#define SCALAR_BASE (-3)

typedef struct {
    char *bytes;
    Py_ssize_t len, cap;
} Buffer;

typedef struct {
    const uint8_t *data;
    Py_ssize_t n;
    int64_t name_slot[NAMES]; /* memo index of each name, -1 until its PUT */
    int pending_name;         /* the name the previous opcode pushed, or -1 */
    const uint8_t *tag;
    Buffer out;       /* the stream for the unpickler */
    Buffer values;    /* double per hidden value */
    Buffer row_end;   /* uint8 per hidden value: a row of a list of lists ends after it */
    Buffer bounds;    /* int64 pair (first, stop) per run */
    int32_t *map;
    Py_ssize_t map_cap;
    uint64_t top_slot;  /* the largest original index defined so far */
    int names_defined;  /* the three names of a scalar are in the memo */
    int32_t next_index;
    uint32_t dtype_slot[MAX_DTYPES];
    int dtype_size[MAX_DTYPES];
    int n_dtypes;
    Py_ssize_t hidden_records; /* tensor records left out */
    /* The stack the unpickler will build from the stream: items, and the item count at each open MARK. */
    Py_ssize_t depth;
    Buffer marks;              /* Py_ssize_t per open MARK */
    int top_is_dict;           /* the pickle's object is a dict (its first push is EMPTY_DICT) */
    int tensor_zone;           /* inside the value of a top-level key that holds weights or optimizer state */
} Walk;

static uint32_t u32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t u64_at(const uint8_t *p)
{
    return (uint64_t)u32_at(p) | (uint64_t)u32_at(p + 4) << 32;
}

static int reserve(Buffer *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *bytes = PyMem_Realloc(b->bytes, (size_t)cap);
    if (bytes == NULL)
        return -1;
    b->bytes = bytes;
    b->cap = cap;
    return 0;
}

static int append(Buffer *b, const void *src, Py_ssize_t size)
{
    if (reserve(b, size) < 0)
        return -1;
    memcpy(b->bytes + b->len, src, (size_t)size);
    b->len += size;
    return 0;
}

/* Grow the memo map to hold `slot`; -1 if no pickler writes it (every definition takes a byte) or no memory. */
static int grow_map(Walk *w, uint64_t slot)
{
    if (slot >= (uint64_t)w->n)
        return -1;
    Py_ssize_t cap = w->map_cap ? w->map_cap : 1024;
    while (cap <= (Py_ssize_t)slot)
        cap *= 2;
    int32_t *map = PyMem_Realloc(w->map, (size_t)cap * sizeof(int32_t));
    if (map == NULL)
        return -1;
    memset(map + w->map_cap, 0, (size_t)(cap - w->map_cap) * sizeof(int32_t));
    w->map = map;
    w->map_cap = cap;
    return 0;
}

/* The map entry of an original memo index, NULL if it cannot be one (see grow_map). */
static inline int32_t *map_entry(Walk *w, uint64_t slot)
{
    if (slot < (uint64_t)w->map_cap)
        return w->map + slot;
    return grow_map(w, slot) < 0 ? NULL : w->map + slot;
}

static inline int visible(Walk *w, uint64_t slot)
{
    int32_t *entry = map_entry(w, slot);
    return entry != NULL && *entry > 0;
}

/* ---- decoding --------------------------------------------------------------------------------------- */

/* Decode latin-1 text stored as UTF-8 (C2/C3 leads only) into chars[0..8); its length, -1 if not that or > 8. */
static int decode_latin1(const uint8_t *p, uint32_t length, uint8_t chars[8])
{
    int count = 0;
    for (uint32_t i = 0; i < length; i++) {
        unsigned c = p[i];
        if (c >= 0x80) {
            if ((c != 0xC2 && c != 0xC3) || i + 1 >= length || (p[i + 1] & 0xC0) != 0x80)
                return -1;
            c = ((c & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i++;
        }
        if (count == 8)
            return -1;
        chars[count++] = (uint8_t)c;
    }
    return count;
}

static double half_to_double(uint16_t h)
{
    int exponent = (h >> 10) & 0x1F;
    double mantissa = h & 0x3FF;
    double value;
    if (exponent == 0)
        value = ldexp(mantissa, -24);
    else if (exponent == 31)
        value = mantissa ? Py_NAN : Py_HUGE_VAL;
    else
        value = ldexp(mantissa + 1024.0, exponent - 25);
    return (h & 0x8000) ? -value : value;
}

static double float_of(const uint8_t chars[8], int size)
{
    if (size == 2)
        return half_to_double((uint16_t)(chars[0] | chars[1] << 8));
    if (size == 4) {
        float f;
        uint32_t bits = u32_at(chars);
        memcpy(&f, &bits, 4);
        return f;
    }
    double d;
    uint64_t bits = u64_at(chars);
    memcpy(&d, &bits, 8);
    return d;
}

/* ---- the scalar template ---------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t end;   /* offset after the scalar */
    uint64_t first;   /* its first memo index; the scalar itself is first + 4 */
    uint32_t dtype;   /* memo index of its dtype */
    int size;         /* itemsize: characters in the payload */
    double value;
} Scalar;

static int memo_op_at(const uint8_t *p, int op, uint64_t slot)
{
    return p[0] == op && u32_at(p + 1) == slot;
}

/* Whether a templated scalar starts at `at`:
 *   GET scalar, GET <dtype>, GET _codecs.encode, BINUNICODE <payload>, PUT s, GET 'latin1', TUPLE2,
 *   PUT s+1, REDUCE, PUT s+2, TUPLE2, PUT s+3, REDUCE, PUT s+4
 * with all three names and the dtype already defined and s..s+4 not. */
static int scalar_at(Walk *w, Py_ssize_t at, Scalar *out)
{
    const uint8_t *p = w->data + at;
    if (at + SCALAR_FIXED + 2 > w->n || !w->names_defined || !memo_op_at(p, OP_LONG_BINGET, w->name_slot[FN]) ||
        p[5] != OP_LONG_BINGET || !memo_op_at(p + 10, OP_LONG_BINGET, w->name_slot[ENCODE]) || p[15] != OP_BINUNICODE)
        return 0;
    uint32_t length = u32_at(p + 16);
    if (length < 2 || length > 16 || at + SCALAR_FIXED + (Py_ssize_t)length > w->n)
        return 0;
    const uint8_t *t = p + 20 + length;
    uint64_t s = u32_at(t + 1);
    if (t[0] != OP_LONG_BINPUT || !memo_op_at(t + 5, OP_LONG_BINGET, w->name_slot[LATIN1]) || t[10] != OP_TUPLE2 ||
        !memo_op_at(t + 11, OP_LONG_BINPUT, s + 1) || t[16] != OP_REDUCE || !memo_op_at(t + 17, OP_LONG_BINPUT, s + 2) ||
        t[22] != OP_TUPLE2 || !memo_op_at(t + 23, OP_LONG_BINPUT, s + 3) || t[28] != OP_REDUCE ||
        !memo_op_at(t + 29, OP_LONG_BINPUT, s + 4))
        return 0;
    uint8_t chars[8];
    int size = decode_latin1(p + 20, length, chars);
    if (size != 2 && size != 4 && size != 8)
        return 0;
    uint32_t dtype = u32_at(p + 6);
    if (!visible(w, dtype) || map_entry(w, s + 4) == NULL)
        return 0;
    if (s <= w->top_slot) /* a pickler's indices only grow: this check is for anything else */
        for (uint64_t k = 0; k < 5; k++)
            if (w->map[s + k] != 0)
                return 0;
    out->end = at + SCALAR_FIXED + length;
    out->first = s;
    out->dtype = dtype;
    out->size = size;
    out->value = float_of(chars, size);
    return 1;
}

/* ---- hiding runs ------------------------------------------------------------------------------------ */

static int open_run(Walk *w)
{
    int64_t first = (int64_t)(w->values.len / (Py_ssize_t)sizeof(double));
    int64_t pair[2] = {first, first};
    uint32_t run = (uint32_t)(w->bounds.len / (Py_ssize_t)sizeof(pair));
    uint8_t marker[MARKER_BYTES] = {'B', 16, 0, 0, 0};
    memcpy(marker + 5, w->tag, TAG_BYTES);
    memcpy(marker + 5 + TAG_BYTES, &run, 4);
    return append(&w->bounds, pair, sizeof(pair)) < 0 || append(&w->out, marker, MARKER_BYTES) < 0 ? -1 : 0;
}

static int add_value(Walk *w, double value)
{
    uint8_t no = 0;
    if (append(&w->values, &value, sizeof(value)) < 0 || append(&w->row_end, &no, 1) < 0)
        return -1;
    ((int64_t *)w->bounds.bytes)[w->bounds.len / (Py_ssize_t)sizeof(int64_t) - 1] += 1;
    return 0;
}

static int hide_scalar(Walk *w, const Scalar *s)
{
    int known = 0;
    for (int i = 0; i < w->n_dtypes; i++)
        if (w->dtype_slot[i] == s->dtype) {
            if (w->dtype_size[i] != s->size)
                return -1;
            known = 1;
        }
    if (!known) {
        if (w->n_dtypes == MAX_DTYPES)
            return -1;
        w->dtype_slot[w->n_dtypes] = s->dtype;
        w->dtype_size[w->n_dtypes++] = s->size;
    }
    int32_t value_index = (int32_t)(w->values.len / (Py_ssize_t)sizeof(double));
    for (uint64_t k = 0; k < 4; k++)
        w->map[s->first + k] = HIDDEN; /* scalar_at made room */
    w->map[s->first + 4] = SCALAR_BASE - value_index;
    if (s->first + 4 > w->top_slot)
        w->top_slot = s->first + 4;
    return add_value(w, s->value);
}

/* What a pickler writes between scalars of a list (APPENDS MARK every 1000) or between rows of a list of
 * lists: the row's APPENDS (APPEND for one item), the outer APPENDS MARK every 1000 rows, the next row's
 * EMPTY_LIST PUT (and MARK for 2+ items).  `put`: the PUT's offset, or -1. */
static const struct {
    const char *bytes;
    int len, put;
} CONNECTORS[] = {
    {"e(", 2, -1}, {"e]r\0\0\0\0(", 8, 2}, {"a]r\0\0\0\0", 7, 2}, {"ee(]r\0\0\0\0(", 10, 4}, {"ae(]r\0\0\0\0", 9, 4},
};

static int connector_matches(const uint8_t *p, int index)
{
    const char *c = CONNECTORS[index].bytes;
    int put = CONNECTORS[index].put;
    for (int i = 0; i < CONNECTORS[index].len; i++)
        if ((put < 0 || i <= put || i > put + 4) && p[i] != (uint8_t)c[i])
            return 0;
    return 1;
}

/* Hide a run of scalars starting with the one found at `at`; returns the offset after it, -1 on failure. */
static Py_ssize_t hide_scalar_run(Walk *w, Scalar s)
{
    if (open_run(w) < 0 || hide_scalar(w, &s) < 0)
        return -1;
    for (;;) {
        uint64_t last = s.first + 4;
        Py_ssize_t at = s.end;
        Scalar next;
        if (scalar_at(w, at, &next) && next.first == last + 1) {
            if (hide_scalar(w, &next) < 0)
                return -1;
            s = next;
            continue;
        }
        int joined = 0;
        for (size_t i = 0; i < sizeof(CONNECTORS) / sizeof(CONNECTORS[0]) && !joined; i++) {
            int len = CONNECTORS[i].len, put = CONNECTORS[i].put;
            if (at + len > w->n || !connector_matches(w->data + at, (int)i))
                continue;
            uint64_t expected = last + (put < 0 ? 1 : 2);
            if (put >= 0 && u32_at(w->data + at + put + 1) != last + 1)
                continue;
            int32_t *row_slot = put >= 0 ? map_entry(w, last + 1) : NULL;
            if ((put >= 0 && (row_slot == NULL || *row_slot != 0)) || !scalar_at(w, at + len, &next) ||
                next.first != expected)
                continue;
            if (put >= 0) {
                w->map[last + 1] = HIDDEN; /* not through row_slot: scalar_at may have grown the map */
                w->row_end.bytes[w->row_end.len - 1] = 1;
            }
            if (hide_scalar(w, &next) < 0)
                return -1;
            s = next;
            joined = 1;
        }
        if (!joined)
            return at;
    }
}

/* Hide a batch of python floats (BINFLOAT, 9 bytes each, APPENDS MARK every 1000) starting at `at`. */
static Py_ssize_t hide_float_run(Walk *w, Py_ssize_t at)
{
    if (open_run(w) < 0)
        return -1;
    for (;;) {
        while (at + 9 <= w->n && w->data[at] == OP_BINFLOAT) {
            uint64_t bits = 0;
            for (int i = 1; i <= 8; i++)
                bits = bits << 8 | w->data[at + i]; /* big-endian */
            double value;
            memcpy(&value, &bits, 8);
            if (add_value(w, value) < 0)
                return -1;
            at += 9;
        }
        if (at + 12 <= w->n && w->data[at] == OP_APPENDS && w->data[at + 1] == OP_MARK &&
            w->data[at + 2] == OP_BINFLOAT)
            at += 2;
        else
            return at;
    }
}

/* ---- the walk --------------------------------------------------------------------------------------- */

/* Length of the opcode at `at` with its argument, 0 if unknown or truncated (memo opcodes: the caller's). */
static Py_ssize_t opcode_length(const uint8_t *data, Py_ssize_t n, Py_ssize_t at)
{
    const uint8_t *p = data + at;
    Py_ssize_t rest = n - at, len;
    const uint8_t *nl;
    switch (p[0]) {
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'R': case 'a': case 'b': case 'd':
    case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u': case 'Q':
    case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91:
    case 0x92: case 0x93:
        len = 1;
        break;
    case 'K': case 0x80: case 0x82:
        len = 2;
        break;
    case 'M': case 0x83:
        len = 3;
        break;
    case 'J': case 0x84:
        len = 5;
        break;
    case 'G':
        len = 9;
        break;
    case 'U': case 'C': case 0x8c: case 0x8a: /* 1-byte length */
        len = rest >= 2 ? 2 + (Py_ssize_t)p[1] : 0;
        break;
    case 'T': case 'X': case 'B': case 0x8b: /* 4-byte length */
        len = rest >= 5 ? 5 + (Py_ssize_t)u32_at(p + 1) : 0;
        break;
    case 0x8d: case 0x8e: case 0x96: /* 8-byte length */
        len = rest >= 9 && u64_at(p + 1) < (uint64_t)rest ? 9 + (Py_ssize_t)u64_at(p + 1) : 0;
        break;
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': /* one line */
        nl = memchr(p + 1, '\n', (size_t)(rest - 1));
        len = nl ? nl - p + 1 : 0;
        break;
    case 'c': case 'i': /* two lines */
        nl = memchr(p + 1, '\n', (size_t)(rest - 1));
        nl = nl ? memchr(nl + 1, '\n', (size_t)(p + rest - nl - 1)) : NULL;
        len = nl ? nl - p + 1 : 0;
        break;
    default: /* text memo opcodes, MEMOIZE, FRAME, and anything unknown */
        return 0;
    }
    return len > 0 && len <= rest ? len : 0;
}

/* ---- tensor records ------------------------------------------------------------------------------- */

enum { POP_TO_MARK = -1, MAX_RECORD_PUTS = 64, MAX_RECORD_MARKS = 16 };

/* Items popped (POP_TO_MARK: through the last MARK) and pushed by an opcode a tensor record may hold; 0 for
 * the rest: globals (each must reach the restricted unpickler), POP, DUP, STOP and the unknown. */
static int record_effect(int op, int *pop, int *push)
{
    *pop = 0;
    *push = 1;
    switch (op) {
    case 'N': case 0x88: case 0x89: case 'I': case 'J': case 'K': case 'M': case 'L': case 0x8a: case 0x8b:
    case 'F': case 'G': case 'S': case 'T': case 'U': case 'B': case 'C': case 0x8e: case 'V': case 'X':
    case 0x8c: case 0x8d: case 0x96: case ']': case '}': case ')': case 0x8f: case 'P': case '(':
        return 1;
    case 'Q': case 0x85:
        *pop = 1;
        return 1;
    case 0x86: case 'R': case 0x81: case 'b': case 'a':
        *pop = 2;
        return 1;
    case 0x87: case 's': case 0x92:
        *pop = 3;
        return 1;
    case 't': case 'l': case 'd': case 0x91: case 'o':
        *pop = POP_TO_MARK;
        return 1;
    case 'e': case 'u': case 0x90:
        *pop = POP_TO_MARK;
        *push = 0;
        return 1;
    default:
        return 0;
    }
}

/* The end of the tensor record at `at` (GET _rebuild_tensor_v2, its arguments, REDUCE), 0 if it cannot be
 * left out: only records that name no global and fetch only visible entries or earlier records' are; what
 * they PUT is for other hidden records only (a visible GET of it declines). */
static Py_ssize_t tensor_record_at(Walk *w, Py_ssize_t at, int op)
{
    Py_ssize_t pos = at + (op == OP_BINGET ? 2 : 5);
    if (w->name_slot[REBUILD] < 0 || pos > w->n ||
        (op == OP_BINGET ? w->data[at + 1] : u32_at(w->data + at + 1)) != (uint64_t)w->name_slot[REBUILD])
        return 0;
    uint64_t puts[MAX_RECORD_PUTS];
    int depth = 1, marks[MAX_RECORD_MARKS], n_puts = 0, n_marks = 0;
    while (pos < w->n) {
        int code = w->data[pos];
        if (code == OP_BINGET || code == OP_LONG_BINGET || code == OP_BINPUT || code == OP_LONG_BINPUT) {
            Py_ssize_t step = code == OP_BINGET || code == OP_BINPUT ? 2 : 5;
            if (pos + step > w->n)
                return 0;
            uint64_t slot = step == 2 ? w->data[pos + 1] : u32_at(w->data + pos + 1);
            if (code == OP_BINGET || code == OP_LONG_BINGET) {
                int32_t *entry = map_entry(w, slot);
                if (entry == NULL || (*entry <= 0 && *entry != IN_RECORD))
                    return 0;
                depth++;
            } else {
                int32_t *entry = map_entry(w, slot);
                if (entry == NULL || *entry != 0 || n_puts == MAX_RECORD_PUTS)
                    return 0;
                for (int i = 0; i < n_puts; i++)
                    if (puts[i] == slot)
                        return 0;
                puts[n_puts++] = slot;
            }
            pos += step;
            continue;
        }
        int pop, push;
        Py_ssize_t step = record_effect(code, &pop, &push) ? opcode_length(w->data, w->n, pos) : 0;
        if (step == 0)
            return 0;
        pos += step;
        if (code == OP_MARK) {
            if (n_marks == MAX_RECORD_MARKS)
                return 0;
            marks[n_marks++] = depth;
            continue;
        }
        if (pop == POP_TO_MARK) {
            if (n_marks == 0)
                return 0;
            depth = marks[--n_marks] + push;
            continue;
        }
        if (depth - pop < (n_marks ? marks[n_marks - 1] : 1)) {
            if (code != OP_REDUCE || n_marks != 0 || depth != 2)
                return 0;
            for (int i = 0; i < n_puts; i++) { /* the call on the record's own function: its end */
                w->map[puts[i]] = IN_RECORD;
                if (puts[i] > w->top_slot)
                    w->top_slot = puts[i];
            }
            return pos;
        }
        depth += push - pop;
    }
    return 0;
}

/* Opcodes that may lie between the lists of one logging dict, where MARK BINFLOAT starts a float run. */
static int between_lists(int op)
{
    return strchr("e(]}aNrqjhKMJXG", op) != NULL && op != 0;
}

static int copy(Walk *w, Py_ssize_t at, Py_ssize_t len)
{
    return append(&w->out, w->data + at, len);
}

/* PUT defines the next dense index; GET fetches a visible one, or is replaced by a hidden scalar's value. */
static int memo_op(Walk *w, Py_ssize_t at, int op, int pending_name)
{
    int is_long = op == OP_LONG_BINPUT || op == OP_LONG_BINGET;
    Py_ssize_t len = is_long ? 5 : 2;
    if (at + len > w->n)
        return -1;
    uint64_t slot = is_long ? u32_at(w->data + at + 1) : w->data[at + 1];
    int32_t *entry = map_entry(w, slot);
    if (entry == NULL)
        return -1;
    uint32_t index;
    if (op == OP_LONG_BINPUT || op == OP_BINPUT) {
        if (*entry != 0 || w->next_index == INT32_MAX)
            return -1;
        index = (uint32_t)w->next_index++;
        *entry = (int32_t)index + 1;
        if (slot > w->top_slot)
            w->top_slot = slot;
        if (pending_name >= 0 && w->name_slot[pending_name] < 0) {
            w->name_slot[pending_name] = (int64_t)slot;
            w->names_defined = w->name_slot[FN] >= 0 && w->name_slot[ENCODE] >= 0 && w->name_slot[LATIN1] >= 0;
        }
    } else if (*entry > 0) {
        index = (uint32_t)(*entry - 1);
    } else if (*entry <= SCALAR_BASE) {
        double value = ((double *)w->values.bytes)[SCALAR_BASE - *entry];
        uint64_t bits;
        memcpy(&bits, &value, 8);
        uint8_t binfloat[9] = {OP_BINFLOAT};
        for (int i = 0; i < 8; i++)
            binfloat[1 + i] = (uint8_t)(bits >> (56 - 8 * i)); /* big-endian */
        return append(&w->out, binfloat, 9);
    } else {
        return -1; /* undefined, or a hidden object that is not a scalar */
    }
    uint8_t opcode[5] = {(uint8_t)op};
    if (is_long) {
        for (int i = 0; i < 4; i++)
            opcode[1 + i] = (uint8_t)(index >> (8 * i));
    } else if (index < 256) {
        opcode[1] = (uint8_t)index;
    } else {
        return -1;
    }
    return append(&w->out, opcode, len);
}

/* record_effect plus the opcodes a tensor record may not hold; POP of a bare MARK is the caller's. */
static int stack_effect(int op, int *pop, int *push)
{
    if (record_effect(op, pop, push))
        return 1;
    *pop = 0;
    *push = 1;
    switch (op) {
    case 'c': case 0x82: case 0x83: case 0x84: case 'h': case 'j': case '2': /* GLOBAL, EXT, GET, DUP */
        return 1;
    case 0x93: /* STACK_GLOBAL */
        *pop = 2;
        return 1;
    case 'i': /* INST */
        *pop = POP_TO_MARK;
        return 1;
    case 'q': case 'r': case 0x80: case '.': /* PUT, PROTO, STOP */
        *push = 0;
        return 1;
    case '0': /* POP */
        *pop = 1;
        *push = 0;
        return 1;
    case '1': /* POP_MARK */
        *pop = POP_TO_MARK;
        *push = 0;
        return 1;
    default:
        return 0;
    }
}

/* Apply one opcode to the stack model; -1 if it pops what is not there (the caller declines). */
static int track(Walk *w, int op)
{
    Py_ssize_t *marks = (Py_ssize_t *)w->marks.bytes, n_marks = w->marks.len / (Py_ssize_t)sizeof(Py_ssize_t);
    Py_ssize_t floor = n_marks ? marks[n_marks - 1] : 0;
    int pop, push;
    if (op == OP_MARK)
        return append(&w->marks, &w->depth, sizeof(w->depth));
    if (!stack_effect(op, &pop, &push))
        return -1;
    if (op == '0' && w->depth == floor) { /* POP with nothing above the MARK pops the MARK */
        pop = POP_TO_MARK;
    }
    if (pop == POP_TO_MARK) {
        if (n_marks == 0)
            return -1;
        w->depth = floor + push;
        w->marks.len -= (Py_ssize_t)sizeof(Py_ssize_t);
        return 0;
    }
    if (w->depth - pop < floor)
        return -1;
    if (w->depth == 0 && push && !w->top_is_dict)
        w->top_is_dict = op == '}' ? 1 : -1;
    w->depth += push - pop;
    return 0;
}

/* Top-level keys holding the tensors (v2, v1): only there are records left out, so a tensor elsewhere (a
 * curve, init_args) is described as plain unpickling describes it. */
static const char *const TENSOR_KEYS[] = {"network_weights", "optimizer_state", "state_dict", "optimizer_state_dict"};

/* Before the BINUNICODE at `at` is pushed: if it is a top-level key (even position above the MARK on the
 * dict, or alone above it for SETITEM), whether its value holds the tensors. */
static void note_top_level_key(Walk *w, Py_ssize_t at)
{
    Py_ssize_t *marks = (Py_ssize_t *)w->marks.bytes, n_marks = w->marks.len / (Py_ssize_t)sizeof(Py_ssize_t);
    int key = n_marks == 0 ? w->depth == 1 : n_marks == 1 && marks[0] == 1 && (w->depth - 1) % 2 == 0;
    if (w->top_is_dict != 1 || !key || at + 5 > w->n)
        return;
    Py_ssize_t length = (Py_ssize_t)u32_at(w->data + at + 1);
    w->tensor_zone = 0;
    for (size_t i = 0; i < sizeof(TENSOR_KEYS) / sizeof(TENSOR_KEYS[0]); i++)
        if ((Py_ssize_t)strlen(TENSOR_KEYS[i]) == length && at + 5 + length <= w->n &&
            memcmp(w->data + at + 5, TENSOR_KEYS[i], (size_t)length) == 0)
            w->tensor_zone = 1;
}

/* Before STOP: pair the object with a tuple of the hidden scalars' dtypes (each a visible memo entry). */
static int dtype_tuple(Walk *w)
{
    if (append(&w->out, "(", 1) < 0)
        return -1;
    for (int i = 0; i < w->n_dtypes; i++) {
        uint32_t index = (uint32_t)(w->map[w->dtype_slot[i]] - 1);
        uint8_t get[5] = {OP_LONG_BINGET, (uint8_t)index, (uint8_t)(index >> 8), (uint8_t)(index >> 16),
                          (uint8_t)(index >> 24)};
        if (append(&w->out, get, 5) < 0)
            return -1;
    }
    return append(&w->out, "t\x86", 2);
}

/* Walk the whole pickle; 0 when it reached STOP having hidden a run or a tensor record, -1 to decline. */
static int walk(Walk *w)
{
    Py_ssize_t at = 0;
    /* after_key: a string was just pushed and memoised, as a dict key; no run starts there, so a scalar dict
     * value (_best_ema, a number in init_args) stays for the unpickler instead of making the pass decline. */
    int after_mark = 0, after_key = 0, in_lists = 0, previous = -1;
    while (at < w->n) {
        int op = w->data[at], pending_name = w->pending_name;
        w->pending_name = -1;
        Scalar s;
        if (op == OP_LONG_BINGET && !after_key && scalar_at(w, at, &s)) {
            at = hide_scalar_run(w, s);
            if (at < 0)
                return -1;
            w->depth++; /* the unpickler sees one bytes object */
            after_mark = 0;
            in_lists = 1;
            previous = -1;
            continue;
        }
        if (op == OP_BINFLOAT && after_mark && in_lists) {
            at = hide_float_run(w, at);
            if (at < 0)
                return -1;
            w->depth++;
            after_mark = 0;
            previous = -1;
            continue;
        }
        Py_ssize_t end = w->tensor_zone && (op == OP_BINGET || op == OP_LONG_BINGET) ? tensor_record_at(w, at, op) : 0;
        if (end > 0) {
            if (append(&w->out, "N", 1) < 0)
                return -1;
            w->hidden_records++;
            w->depth++;
            at = end;
            after_mark = after_key = in_lists = 0;
            previous = -1;
            continue;
        }
        in_lists = in_lists && between_lists(op);
        after_mark = op == OP_MARK;
        after_key = (op == OP_BINPUT || op == OP_LONG_BINPUT) &&
                    (previous == OP_BINUNICODE || previous == OP_SHORT_BINUNICODE || previous == OP_BINUNICODE8);
        previous = op;
        if (op == OP_BINUNICODE)
            note_top_level_key(w, at);
        if (track(w, op) < 0)
            return -1;
        if (op == OP_BINPUT || op == OP_LONG_BINPUT || op == OP_BINGET || op == OP_LONG_BINGET) {
            if (memo_op(w, at, op, pending_name) < 0)
                return -1;
            at += op == OP_BINPUT || op == OP_BINGET ? 2 : 5;
            continue;
        }
        Py_ssize_t len = opcode_length(w->data, w->n, at);
        if (len == 0)
            return -1;
        for (size_t i = 0; (op == 'c' || op == OP_BINUNICODE) && i < sizeof(NAME_OPCODES) / sizeof(NAME_OPCODES[0]); i++)
            if (len == NAME_OPCODES[i].len && memcmp(w->data + at, NAME_OPCODES[i].bytes, (size_t)len) == 0)
                w->pending_name = NAME_OPCODES[i].name;
        if ((op == OP_STOP && dtype_tuple(w) < 0) || copy(w, at, len) < 0)
            return -1;
        at += len;
        if (op == OP_STOP)
            return w->bounds.len > 0 || w->hidden_records > 0 ? 0 : -1;
    }
    return -1;
}

/* ---- the memo guard ---------------------------------------------------------------------------------- */

/* The largest memo index defined up to STOP or the first opcode this cannot measure (the unpickler stops
 * there too, or never gets there); -1 if none.  CPython sizes its memo array by it (see memo_bound_doc). */
static long long memo_bound_of(const uint8_t *data, Py_ssize_t n)
{
    long long bound = -1, memoized = 0;
    Py_ssize_t at = 0;
    while (at < n) {
        int op = data[at];
        Py_ssize_t len;
        long long index = -1;
        if (op == OP_BINPUT || op == OP_BINGET) {
            len = 2;
            if (op == OP_BINPUT && at + 1 < n)
                index = data[at + 1];
        } else if (op == OP_LONG_BINPUT || op == OP_LONG_BINGET) {
            len = 5;
            if (op == OP_LONG_BINPUT && at + 5 <= n)
                index = u32_at(data + at + 1);
        } else if (op == 'p' || op == 'g') { /* text PUT / GET: a decimal index and a newline */
            const uint8_t *nl = memchr(data + at + 1, '\n', (size_t)(n - at - 1));
            if (nl == NULL)
                break;
            len = nl - (data + at) + 1;
            if (op == 'p') {
                index = 0;
                for (const uint8_t *d = data + at + 1; d < nl && index < (1LL << 40); d++)
                    index = (*d >= '0' && *d <= '9') ? index * 10 + (*d - '0') : index;
            }
        } else if (op == 0x94) { /* MEMOIZE: the next index */
            len = 1;
            index = memoized++;
        } else if (op == 0x95) { /* FRAME: an 8-byte length, then opcodes */
            len = 9;
        } else {
            len = opcode_length(data, n, at);
            if (len == 0)
                break;
        }
        if (index > bound)
            bound = index;
        if (op == OP_BINPUT || op == OP_LONG_BINPUT || op == 'p')
            memoized = index + 1 > memoized ? index + 1 : memoized;
        if (op == OP_STOP)
            break;
        at += len;
    }
    return bound;
}

PyDoc_STRVAR(memo_bound_doc,
"memo_bound(data) -> int\n\n"
"The largest memo index a PUT or MEMOIZE of the pickle `data` defines (-1: none); one beyond len(data)\n"
"is a corrupt byte that would make CPython's unpickler allocate a memo array twice as large.");

static PyObject *memo_bound(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    long long bound = memo_bound_of(data.buf, data.len);
    PyBuffer_Release(&data);
    return PyLong_FromLongLong(bound);
}

/* ---- the Python entry point ------------------------------------------------------------------------- */

static PyObject *results(Walk *w)
{
    uint8_t sizes[MAX_DTYPES];
    for (int i = 0; i < w->n_dtypes; i++)
        sizes[i] = (uint8_t)w->dtype_size[i];
    PyObject *result = NULL;
    PyObject *values = PyByteArray_FromStringAndSize(w->values.bytes, w->values.len);
    if (values != NULL)
        result = Py_BuildValue("y#Ny#y#y#", w->out.bytes, w->out.len, values,
                               w->bounds.bytes ? w->bounds.bytes : "", w->bounds.len, /* no run: b"", not None */
                               w->row_end.bytes ? w->row_end.bytes : "", w->row_end.len, sizes,
                               (Py_ssize_t)w->n_dtypes);
    return result;
}

PyDoc_STRVAR(collapse_doc,
"collapse(data, tag) -> None | (stream, values, bounds, row_end, sizes)\n\n"
"Walk the pickle `data`, hiding float runs and tensor records (see the module source); tag: 12 random bytes.\n"
"stream: bytes for the unpickler; values: bytearray of float64; bounds: int64 (first, stop) per run;\n"
"row_end: one flag per value; sizes: the itemsize of each dtype the stream pairs its object with, as little-endian floats.  None: declined.");

static PyObject *collapse(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer data, tag;
    if (!PyArg_ParseTuple(args, "y*y*", &data, &tag))
        return NULL;
    PyObject *result = NULL;
    if (tag.len != TAG_BYTES) {
        PyErr_SetString(PyExc_ValueError, "collapse: the tag must be 12 bytes");
    } else {
        Walk w;
        memset(&w, 0, sizeof(w));
        w.data = data.buf;
        w.n = data.len;
        for (int i = 0; i < NAMES; i++)
            w.name_slot[i] = -1;
        w.pending_name = -1;
        w.tag = tag.buf;
        if (reserve(&w.out, data.len / 8 + 64) < 0)
            PyErr_NoMemory();
        else if (walk(&w) < 0)
            result = PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
        else
            result = results(&w);
        PyMem_Free(w.out.bytes);
        PyMem_Free(w.values.bytes);
        PyMem_Free(w.row_end.bytes);
        PyMem_Free(w.bounds.bytes);
        PyMem_Free(w.marks.bytes);
        PyMem_Free(w.map);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&tag);
    return result;
}

static PyMethodDef methods[] = {
    {"collapse", collapse, METH_VARARGS, collapse_doc},
    {"memo_bound", memo_bound, METH_O, memo_bound_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_scalar_runs",
    "The checkpoint reader's compiled pass over data.pkl, and its memo guard (see monitor.checkpoints.runs).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scalar_runs(void)
{
    return PyModule_Create(&module_def);
}
