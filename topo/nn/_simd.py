"""A register-tile transpose for the numba kernels, written as LLVM vector shuffles.

numba compiles an element-by-element transpose loop to scalar loads and stores
(≈ 1.2 cycles per element on the development machine: 5x the cost of a copy).
:func:`tile_transpose` instead loads one 64-byte tile row per vector (16 float32 or
8 float64), transposes the tile with ``log2(T)`` rounds of ``shufflevector`` (each round
swaps the off-diagonal blocks of every 2d × 2d block) and stores the columns as
vectors: LLVM lowers the shuffles to the target's permutes (tested as SSE2, AVX2 and
host code: ``NUMBA_CPU_NAME=generic|haswell``; a 64-byte row is then 4 or 2 registers).
Imported only by :func:`topo.nn.kernels._build`, so numba stays optional.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["tile_transpose"]

#: Bytes of one tile row: one AVX-512 register, two AVX2 or four NEON ones.
TILE_BYTES = 64


def tile_size(itemsize: int) -> int:
    """Rows (= columns) of a tile of ``itemsize``-byte elements."""
    return TILE_BYTES // itemsize


def _rounds(t: int) -> list[tuple[int, list[int], list[int]]]:
    # Round d pairs rows r and r|d (bit d of r clear): the low row takes its own elements where
    # bit d of the column is clear and the partner's (column j^d) where it is set; the high row
    # the reverse. After the rounds d = t/2 ... 1, row a holds column a of the input tile.
    out, d = [], t // 2
    while d:
        low = [j if j & d == 0 else t + (j ^ d) for j in range(t)]
        high = [(j | d) if j & d == 0 else t + j for j in range(t)]
        out.append((d, low, high))
        d //= 2
    return out


@intrinsic
def tile_transpose(typingctx, src, si, sj, dst, di, dj):
    """``dst[di + a, dj + b] = src[si + b, sj + a]`` for ``a, b < T`` (one full tile, no bounds checks)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.ndim == dst.ndim == 2
            and src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None
    t = tile_size(src.dtype.bitwidth // 8)
    sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        s_val, s_i, s_j, d_val, d_i, d_j = args
        s_arr = context.make_array(signature.args[0])(context, builder, s_val)
        d_arr = context.make_array(signature.args[3])(context, builder, d_val)
        elt = context.get_data_type(signature.args[0].dtype)
        align = context.get_abi_sizeof(elt)
        vec = ir.VectorType(elt, t)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)

        def rows(arr, i, j):  # pointers to tile rows (byte strides: any layout whose rows are unit-stride)
            r_stride, c_stride = cgutils.unpack_tuple(builder, arr.strides, 2)
            base = builder.add(builder.mul(i, r_stride), builder.mul(j, c_stride))
            return [cgutils.pointer_add(builder, arr.data, builder.add(base, builder.mul(ir.Constant(intp, k),
                                                                                          r_stride)),
                                        return_type=vec.as_pointer()) for k in range(t)]

        tile = [builder.load(p, align=align) for p in rows(s_arr, s_i, s_j)]
        for d, low, high in _rounds(t):
            m_low = ir.Constant(ir.VectorType(i32, t), [ir.Constant(i32, x) for x in low])
            m_high = ir.Constant(ir.VectorType(i32, t), [ir.Constant(i32, x) for x in high])
            new = list(tile)
            for r in range(t):
                if r & d == 0:
                    new[r] = builder.shuffle_vector(tile[r], tile[r | d], m_low)
                    new[r | d] = builder.shuffle_vector(tile[r], tile[r | d], m_high)
            tile = new
        for v, p in zip(tile, rows(d_arr, d_i, d_j)):
            builder.store(v, p, align=align)
        return context.get_dummy_value()

    return sig, codegen
