# C declarations shared by the compiled modules of ocrledger.kernel (_core, _hashing, _sorting, _passes),
# cimported by each: tuning constants, compiler macros and hash constants, fused types.
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef enum:
    PREFETCH_AHEAD = 16  # calls between a pair's prefetch and its use (~100 ns of memory latency)
    PACK_ALL_RATIO = 4   # a batch of >= n_pair / 4 calls may pack every pair up front
    SAMPLE = 4096        # calls looked at to tell timestamp order from grouped
    HASH_BLOCK = 64      # keys hashed (and their slots prefetched) before they are probed
    SLICE_AHEAD = 8      # parties between a setup row's prefetch and its plan runs' prefetch, and their use

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define OCR_PREFETCH(p) __builtin_prefetch((const void*)(p), 1, 3)
    #define OCR_LIKELY(x) __builtin_expect(!!(x), 1)
    #define OCR_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #else
    #define OCR_PREFETCH(p) ((void)0)
    #define OCR_LIKELY(x) (x)
    #define OCR_UNLIKELY(x) (x)
    #endif
    #define OCR_K0 0x9E3779B97F4A7C15ULL
    #define OCR_K1 0xBF58476D1CE4E5B9ULL
    #define OCR_K2 0x94D049BB133111EBULL
    #define OCR_HI32 0xFFFFFFFF00000000ULL
    #define OCR_LO32 0x00000000FFFFFFFFULL
    """
    const uint64_t OCR_K0, OCR_K1, OCR_K2, OCR_HI32, OCR_LO32
    void OCR_PREFETCH(const void* p) noexcept nogil
    bint OCR_LIKELY(bint x) noexcept nogil
    bint OCR_UNLIKELY(bint x) noexcept nogil


ctypedef fused count_t:  # counters: int32 when the calls counted cannot reach 2**31
    int32_t
    int64_t


ctypedef fused offset_t:  # Arrow string offsets: int32 (string) or int64 (large_string), read as they are
    int32_t
    int64_t
