/* The C half of keyresponse.engines.indicators: two functions for the scan workers.
 *
 * heads(): the index kernel: the distinct "heads" (the bytes after each `"accessKeyId"` /
 * `"sourceIPAddress"` name) of one decompressed CloudTrail file, and the positions of the heads
 * that start with a wanted prefix.
 *
 * It computes exactly what indicators._heads_numpy computes (tests compare the two), in one pass
 * over the bytes instead of numpy's whole-array passes: the scan looks for the byte pair that
 * both names hold ("Id" in accessKeyId, "IP" in sourceIPAddress), 16 bytes at a time with SSE2
 * where the compiler has it, then checks each candidate against the whole name. Distinct heads
 * are found with a small open-addressing table over the file's own bytes, so a Python object is
 * made once per distinct value, not once per record.
 *
 * segments(): the text of the records around given positions (see indicators._segments_python).
 *
 * gunzip(): a gzip file of exactly one member (what CloudTrail writes) decompressed by libdeflate,
 * about twice as fast as ISA-L here, straight into the bytes object returned. libdeflate is the
 * system's (Debian's libdeflate0), opened with dlopen when first needed, so nothing is needed at
 * build time; None when it is not there or when the file is anything but one whole member (several
 * members, bytes after the member, a size in the trailer that does not fit): the caller then uses
 * ISA-L, which reads every member or says what is wrong. libdeflate checks the member's CRC-32 and
 * size; `actual_in == len(data)` proves that nothing follows the member.
 *
 * Optional: when this extension is not built (no compiler), the numpy index and ISA-L are used.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem, memrchr */
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
    const unsigned char *name; /* the quoted name, e.g. "accessKeyId" with its quotes */
    Py_ssize_t name_len;
    Py_ssize_t anchor;         /* offset of the 'I' of the anchor pair in the name */
    unsigned char second;      /* the byte after the 'I' in the name: 'd' or 'P' */
    Py_ssize_t width;          /* bytes kept after the name */
    /* distinct heads: an open-addressing table of offsets into the data */
    Py_ssize_t *slots;         /* -1 = empty; else the head's offset */
    uint64_t *hashes;
    Py_ssize_t capacity, used;
    PyObject *hits;            /* list of int */
} Name;

static uint64_t head_hash(const unsigned char *p, Py_ssize_t n) {
    /* 8 bytes at a time (a head is 24 or 48 bytes): multiply-xorshift, then the last bytes */
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ULL;
    return h ^ (h >> 29);
}

static int table_init(Name *nm, Py_ssize_t capacity) {
    nm->slots = PyMem_Malloc(sizeof(Py_ssize_t) * capacity);
    nm->hashes = PyMem_Malloc(sizeof(uint64_t) * capacity);
    if (!nm->slots || !nm->hashes) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < capacity; i++) nm->slots[i] = -1;
    nm->capacity = capacity;
    nm->used = 0;
    return 0;
}

static Py_ssize_t head_len(const Name *nm, Py_ssize_t offset, Py_ssize_t size) {
    Py_ssize_t n = size - offset;
    return n < nm->width ? n : nm->width;
}

static void table_put(Name *nm, Py_ssize_t offset, uint64_t h) {
    /* into the first free slot from h (the head is known not to be there) */
    Py_ssize_t mask = nm->capacity - 1, i = (Py_ssize_t)(h & (uint64_t)mask);
    while (nm->slots[i] >= 0) i = (i + 1) & mask;
    nm->slots[i] = offset;
    nm->hashes[i] = h;
    nm->used++;
}

static int table_grow(Name *nm) {
    Py_ssize_t *old_slots = nm->slots, old_capacity = nm->capacity;
    uint64_t *old_hashes = nm->hashes;
    if (table_init(nm, old_capacity * 2) < 0) {
        PyMem_Free(nm->slots);
        PyMem_Free(nm->hashes);
        nm->slots = old_slots, nm->hashes = old_hashes, nm->capacity = old_capacity;
        return -1;
    }
    for (Py_ssize_t i = 0; i < old_capacity; i++)  /* distinct already, hashes kept: no compare, no rehash */
        if (old_slots[i] >= 0) table_put(nm, old_slots[i], old_hashes[i]);
    PyMem_Free(old_slots);
    PyMem_Free(old_hashes);
    return 0;
}

static int table_add(Name *nm, const unsigned char *data, Py_ssize_t size, Py_ssize_t offset) {
    Py_ssize_t n = head_len(nm, offset, size);
    uint64_t h = head_hash(data + offset, n);
    Py_ssize_t mask = nm->capacity - 1;
    for (Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)mask); nm->slots[i] >= 0; i = (i + 1) & mask) {
        Py_ssize_t other = nm->slots[i];
        if (nm->hashes[i] == h && head_len(nm, other, size) == n && memcmp(data + other, data + offset, n) == 0)
            return 0;
    }
    table_put(nm, offset, h);
    return nm->used * 2 > nm->capacity ? table_grow(nm) : 0;
}

/* A candidate 'I' at `i` followed by nm->second: the whole name must be there. */
static int check(Name *nm, const unsigned char *data, Py_ssize_t size, Py_ssize_t i, PyObject *wanted) {
    Py_ssize_t start = i - nm->anchor;
    if (start < 0 || start + nm->name_len > size) return 0;
    if (memcmp(data + start, nm->name, nm->name_len) != 0) return 0;
    Py_ssize_t value = start + nm->name_len;
    if (table_add(nm, data, size, value) < 0) return -1;
    Py_ssize_t count = PyTuple_GET_SIZE(wanted);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *prefix = PyTuple_GET_ITEM(wanted, k);
        Py_ssize_t plen = PyBytes_GET_SIZE(prefix);
        if (value + plen <= size && memcmp(data + value, PyBytes_AS_STRING(prefix), plen) == 0) {
            PyObject *pos = PyLong_FromSsize_t(value);
            if (!pos || PyList_Append(nm->hits, pos) < 0) {
                Py_XDECREF(pos);
                return -1;
            }
            Py_DECREF(pos);
            break;
        }
    }
    return 0;
}

static int candidate(Name *names, const unsigned char *data, Py_ssize_t size, Py_ssize_t i, PyObject *wanted) {
    unsigned char next = data[i + 1];
    for (int k = 0; k < 2; k++)
        if (next == names[k].second) return check(&names[k], data, size, i, wanted);
    return 0;
}

static int name_init(Name *nm, PyObject *name, Py_ssize_t width) {
    memset(nm, 0, sizeof(*nm));
    nm->name = (const unsigned char *)PyBytes_AS_STRING(name);
    nm->name_len = PyBytes_GET_SIZE(name);
    nm->width = width;
    const unsigned char *at = memchr(nm->name, 'I', nm->name_len);
    if (!at || at + 1 >= nm->name + nm->name_len) {
        PyErr_SetString(PyExc_ValueError, "each name must hold 'I' followed by another byte");
        return -1;
    }
    nm->anchor = at - nm->name;
    nm->second = at[1];
    nm->hits = PyList_New(0);
    if (!nm->hits) return -1;
    return table_init(nm, 256);
}

static void name_free(Name *nm) {
    PyMem_Free(nm->slots);
    PyMem_Free(nm->hashes);
    Py_XDECREF(nm->hits);
}

static PyObject *name_heads(Name *nm, const unsigned char *data, Py_ssize_t size) {
    PyObject *heads = PySet_New(NULL);
    if (!heads) return NULL;
    for (Py_ssize_t i = 0; i < nm->capacity; i++) {
        if (nm->slots[i] < 0) continue;
        PyObject *head = PyBytes_FromStringAndSize((const char *)data + nm->slots[i],
                                                   head_len(nm, nm->slots[i], size));
        if (!head || PySet_Add(heads, head) < 0) {
            Py_XDECREF(head);
            Py_DECREF(heads);
            return NULL;
        }
        Py_DECREF(head);
    }
    return heads;
}

PyDoc_STRVAR(heads_doc,
"heads(data, key_name, key_width, ip_name, ip_width, wanted)\n--\n\n"
"(key_heads, key_hits, ip_heads, ip_hits): the distinct `width` bytes after each occurrence of\n"
"each name, and the sorted positions of the values that start with one of the `wanted` byte\n"
"prefixes (a tuple of bytes). Each name must hold 'I' followed by a byte the other does not.");

static PyObject *heads(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    PyObject *key_name, *ip_name, *wanted, *result = NULL;
    Py_ssize_t key_width, ip_width;
    Name names[2];
    if (!PyArg_ParseTuple(args, "y*SnSnO!", &buffer, &key_name, &key_width, &ip_name, &ip_width,
                          &PyTuple_Type, &wanted))
        return NULL;
    memset(names, 0, sizeof(names));
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(wanted); k++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(wanted, k))) {
            PyErr_SetString(PyExc_TypeError, "wanted must be a tuple of bytes");
            goto done;
        }
    }
    if (name_init(&names[0], key_name, key_width) < 0 || name_init(&names[1], ip_name, ip_width) < 0)
        goto done;
    if (names[0].second == names[1].second) {
        PyErr_SetString(PyExc_ValueError, "the names' anchor pairs must differ");
        goto done;
    }
    const unsigned char *data = buffer.buf;
    Py_ssize_t size = buffer.len, i = 0;
#if defined(__SSE2__)
    const __m128i letter = _mm_set1_epi8('I');
    const __m128i a = _mm_set1_epi8((char)names[0].second), b = _mm_set1_epi8((char)names[1].second);
    for (; i + 17 <= size; i += 16) {
        __m128i here = _mm_loadu_si128((const __m128i *)(data + i));
        __m128i next = _mm_loadu_si128((const __m128i *)(data + i + 1));
        __m128i pair = _mm_and_si128(_mm_cmpeq_epi8(here, letter),
                                     _mm_or_si128(_mm_cmpeq_epi8(next, a), _mm_cmpeq_epi8(next, b)));
        unsigned mask = (unsigned)_mm_movemask_epi8(pair);
        while (mask) {
            int bit = __builtin_ctz(mask);
            if (candidate(names, data, size, i + bit, wanted) < 0) goto done;
            mask &= mask - 1;
        }
    }
#endif
    for (; i + 1 < size; i++) {
        const unsigned char *at = memchr(data + i, 'I', size - 1 - i);
        if (!at) break;
        i = at - data;
        if (candidate(names, data, size, i, wanted) < 0) goto done;
    }
    PyObject *key_heads = name_heads(&names[0], data, size);
    PyObject *ip_heads = key_heads ? name_heads(&names[1], data, size) : NULL;
    if (ip_heads)
        result = PyTuple_Pack(4, key_heads, names[0].hits, ip_heads, names[1].hits);
    Py_XDECREF(key_heads);
    Py_XDECREF(ip_heads);
done:
    name_free(&names[0]);
    name_free(&names[1]);
    PyBuffer_Release(&buffer);
    return result;
}

/* -- segments: the records around the hits ---------------------------------------------------- */

static Py_ssize_t find_back(const unsigned char *data, Py_ssize_t size, Py_ssize_t before,
                            const unsigned char *marker, Py_ssize_t mlen) {
    /* the last start s with s + mlen <= before and data[s:s+mlen] == marker, or -1 (bytes.rfind) */
    if (before > size) before = size;
    for (Py_ssize_t s = before - mlen; s >= 0; s--) {
        const unsigned char *at = memrchr(data, marker[0], (size_t)s + 1);
        if (!at) return -1;
        s = at - data;
        if (memcmp(at, marker, mlen) == 0) return s;
    }
    return -1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

PyDoc_STRVAR(segments_doc,
"segments(data, hits, tail, marker)\n--\n\n"
"[(start, text)]: for each of the sorted `hits` not inside the segment just cut and before `tail`,\n"
"the text from the `marker` before it to the next one (or `tail`), without trailing whitespace and\n"
"one trailing comma; UnicodeDecodeError when a segment is not UTF-8.");

static PyObject *segments(PyObject *self, PyObject *args) {
    Py_buffer buffer, mbuf;
    PyObject *hits, *out = NULL;
    Py_ssize_t tail;
    if (!PyArg_ParseTuple(args, "y*O!ny*", &buffer, &PyList_Type, &hits, &tail, &mbuf)) return NULL;
    const unsigned char *data = buffer.buf, *marker = mbuf.buf;
    Py_ssize_t size = buffer.len, mlen = mbuf.len, end = -1;
    if (mlen == 0) {
        PyErr_SetString(PyExc_ValueError, "empty marker");
        goto done;
    }
    out = PyList_New(0);
    if (!out) goto done;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(hits); k++) {
        Py_ssize_t hit = PyLong_AsSsize_t(PyList_GET_ITEM(hits, k));
        if (hit == -1 && PyErr_Occurred()) goto fail;
        if (hit < end || hit >= tail) continue; /* in the segment just cut */
        Py_ssize_t start = find_back(data, size, hit, marker, mlen);
        const unsigned char *next = NULL;
        if (hit >= 0 && hit <= size - mlen)
            next = memmem(data + hit, (size_t)(size - hit), marker, (size_t)mlen);
        end = next ? next - data : -1;
        if (end < 0 || end > tail) end = tail;
        /* data[start:end] with Python's slice rules (start -1 means size - 1) */
        Py_ssize_t lo = start < 0 ? size - 1 : start, hi = end > size ? size : end;
        if (lo < 0) lo = 0;
        if (hi < lo) hi = lo;
        while (hi > lo && is_space(data[hi - 1])) hi--;
        if (hi > lo && data[hi - 1] == ',') {
            hi--;
            while (hi > lo && is_space(data[hi - 1])) hi--;
        }
        PyObject *text = PyUnicode_DecodeUTF8((const char *)data + lo, hi - lo, "strict");
        if (!text) goto fail;
        PyObject *item = Py_BuildValue("(nN)", start, text);
        if (!item || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&mbuf);
    return out;
}

/* -- gunzip: libdeflate, opened at run time ---------------------------------------------------- */

/* The part of libdeflate.h used here (its ABI is stable; libdeflate_gzip_decompress_ex since 1.7). */
struct libdeflate_decompressor;
enum { LIBDEFLATE_SUCCESS = 0 };
typedef struct libdeflate_decompressor *(*alloc_fn)(void);
typedef int (*gunzip_fn)(struct libdeflate_decompressor *, const void *, size_t, void *, size_t, size_t *,
                         size_t *);

static int deflate_state = 0; /* 0: not looked for yet, 1: there, -1: not there */
static struct libdeflate_decompressor *decompressor = NULL;
static gunzip_fn gzip_decompress_ex = NULL;

static int load_libdeflate(void) {
    if (deflate_state) return deflate_state > 0;
    deflate_state = -1;
    void *lib = dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 0;
    alloc_fn alloc = (alloc_fn)dlsym(lib, "libdeflate_alloc_decompressor");
    gzip_decompress_ex = (gunzip_fn)dlsym(lib, "libdeflate_gzip_decompress_ex");
    if (!alloc || !gzip_decompress_ex || !(decompressor = alloc())) return 0;
    deflate_state = 1;
    return 1;
}

PyDoc_STRVAR(gunzip_doc,
"gunzip(data)\n--\n\n"
"The decompressed bytes of a gzip file of exactly one member, or None (no libdeflate here, several\n"
"members, anything after the member, an odd size): the caller then decompresses it another way.");

static PyObject *gunzip(PyObject *self, PyObject *arg) {
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = NULL;
    const unsigned char *bytes = in.buf;
    if (!load_libdeflate() || in.len < 18 || bytes[0] != 0x1f || bytes[1] != 0x8b) goto none;
    uint32_t isize = (uint32_t)bytes[in.len - 4] | (uint32_t)bytes[in.len - 3] << 8 |
                     (uint32_t)bytes[in.len - 2] << 16 | (uint32_t)bytes[in.len - 1] << 24;
    /* DEFLATE expands at most 1032:1; a larger size is a wrapped (>= 4 GiB) or lying trailer */
    if (isize == 0 || (uint64_t)isize > (uint64_t)in.len * 1032) goto none;
    out = PyBytes_FromStringAndSize(NULL, isize);
    if (!out) goto done;
    size_t used = 0, made = 0;
    int result = gzip_decompress_ex(decompressor, in.buf, (size_t)in.len, PyBytes_AS_STRING(out), isize, &used,
                                    &made);
    if (result != LIBDEFLATE_SUCCESS || used != (size_t)in.len || made != isize) {
        Py_CLEAR(out);
        goto none;
    }
    goto done;
none:
    out = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&in);
    return out;
}

static PyMethodDef methods[] = {
    {"heads", heads, METH_VARARGS, heads_doc},
    {"gunzip", gunzip, METH_O, gunzip_doc},
    {"segments", segments, METH_VARARGS, segments_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The C half of keyresponse.engines.indicators.", -1, methods,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
