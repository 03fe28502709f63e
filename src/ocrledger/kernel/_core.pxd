# The C contract of the kernel: integer types and the outcome codes (mirrors ocrledger.codes).
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t

ctypedef int64_t money_t   # micro-units (10^-6 currency units)
ctypedef int64_t instant_t # epoch milliseconds
ctypedef int32_t index_t   # party, API, plan and period indices

cdef enum source_t:
    SRC_NONE = 0
    SRC_FREE = 1
    SRC_DEDICATED = 2
    SRC_SHARED = 3
    SRC_PAYG = 4

cdef enum status_t:
    ST_CHARGED = 0
    ST_FAILED = 1
    ST_DUPLICATE = 2
    ST_REJECTED_INACTIVE = 3
    ST_REJECTED_NO_PLAN = 4
    ST_REJECTED_CREDENTIAL = 5
    ST_ERR_LATE = 64
    ST_ERR_OVERFLOW = 65
