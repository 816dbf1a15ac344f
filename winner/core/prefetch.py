"""A software prefetch for kernels that walk a matrix down its rows or gather rows of a table (LLVM's
llvm.prefetch intrinsic).

The class-factored output reads short stretches of a few columns in every row of a (r, C + V) matrix: rows
tens of kilobytes apart, which the hardware prefetchers do not follow across pages. Asking for a row a few rows
ahead keeps its cache lines on the way while the current row is worked on. The lookup path's first-layer table
(winner.core.lookup) is read by rows the text chooses: a rare word's rows are far from anything in cache. A
prefetch never changes a result and never faults, so the address may lie anywhere.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from winner.core.fastmath import FAST


def _array_with_indices(A, indices) -> bool:
    return (isinstance(A, types.Array) and A.ndim == len(indices)
            and all(isinstance(i, types.Integer) for i in indices))


def _emit_prefetch(context, builder, signature, args):
    """A call of llvm.prefetch on the address of A[indices] (args: the array, then one index per axis)."""
    aty, *index_types = signature.args
    ary = context.make_array(aty)(context, builder, args[0])
    idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], index_types, strict=True)]
    ptr = cgutils.get_item_pointer2(context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
                                    strides=cgutils.unpack_tuple(builder, ary.strides), layout=aty.layout,
                                    inds=idx, wraparound=False, boundscheck=False)
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # a read, keep in all cache levels, data
    return context.get_dummy_value()


@intrinsic
def prefetch(typingctx, A, i, j):
    """Ask for the cache line of A[i, j] (a 2-D array; no bounds check, nothing read)."""
    if not _array_with_indices(A, (i, j)):
        return None
    return types.void(A, i, j), _emit_prefetch


@intrinsic
def prefetch3(typingctx, A, i, j, k):
    """Ask for the cache line of A[i, j, k] (a 3-D array; no bounds check, nothing read)."""
    if not _array_with_indices(A, (i, j, k)):
        return None
    return types.void(A, i, j, k), _emit_prefetch


LINE_BYTES = 64


@njit(cache=True, error_model="numpy", fastmath=FAST)
def prefetch_block(A, i0, i1, lo, hi):
    """Ask for the cache lines of A[i0:i1, lo:hi] (rows past the last one included: nothing is read). Called once
    for a stretch of rows: an inlined helper taking an array costs reference counts at every call."""
    step = max(1, LINE_BYTES // A.itemsize)
    for i in range(i0, i1):
        for j in range(lo, hi, step):
            prefetch(A, i, j)
        if hi > lo:
            prefetch(A, i, hi - 1)
