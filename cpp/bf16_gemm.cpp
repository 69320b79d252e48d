// bfloat16 products of float32 matrices (bf16_gemm.h). The AVX512_BF16 kernel is the usual
// blocked product (the loops of BLIS): op(B) is packed a block of k at a time into panels NR
// columns wide, op(A) into panels MR rows tall, both as bfloat16 pairs (elements 2p and 2p+1 of k
// in one 32-bit word, the layout VDPBF16PS takes); an MR x NR tile of C is summed in 16 registers
// over the block. The functions that use AVX-512 carry a target attribute, so this file is built
// for the baseline like the others and the kernel is only called when the CPU has the instructions.
#include "bf16_gemm.h"

#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TG_BF16_KERNEL 1
#define TG_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

namespace tg {

namespace {

std::atomic<bool> products_on{false};

bool cpu_has_bf16() {
#ifdef TG_BF16_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

const bool cpu_bf16 = cpu_has_bf16();
std::atomic<bool> use_native{cpu_bf16};

// From this many multiply-adds a product is split over the engine's threads (as gemm.cpp's).
constexpr int64_t kSplitMin = int64_t{1} << 21;

// ---- the emulated kernel: round, then the float32 product ----

// A rows x cols matrix (row stride ld) rounded to bfloat16, as float32 values, densely into out
// (the thread's buffer, kept between calls: a fresh one cost a page fault per 4 KB of a layer's
// weights). GCC vectorises the loop (to_bf16's two cases become a select).
void round_into(const float* x, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& out) {
    if (out.size() < static_cast<size_t>(rows * cols)) out.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const float* src = x + r * ld;
        float* dst = out.data() + r * cols;
        for (int64_t c = 0; c < cols; ++c) {
            uint32_t u;
            std::memcpy(&u, src + c, 4);
            u = uint32_t{to_bf16(u)} << 16;
            std::memcpy(dst + c, &u, 4);
        }
    }
}

thread_local std::vector<float> rounded_a, rounded_b;

void emulated_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Fp32Gemm fp32_gemm) {
    // Stored shapes: A is m x k (k x m when transposed), B k x n (n x k).
    const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    round_into(a, ar, ac, lda, rounded_a);
    round_into(b, br, bc, ldb, rounded_b);
    fp32_gemm(ta, tb, m, n, k, alpha, rounded_a.data(), ac, rounded_b.data(), bc, beta, c, ldc);
}

#ifdef TG_BF16_KERNEL

// ---- the AVX512_BF16 kernel ----

constexpr int64_t MR = 8;     // rows of a tile of C
constexpr int64_t NR = 32;    // columns of a tile: two registers of 16 float32
constexpr int64_t KP = 224;   // most pairs of k per block: a B panel (28 KB) stays in L1 across a column of tiles
constexpr int64_t MC = 96;    // rows of op(A) packed at a time (up to 86 KB, in L2)
constexpr int64_t NC = 1536;  // columns of op(B) packed at a time (up to 1.4 MB, in L2 and L3)

// Packing buffers, one pair per thread, 64-byte aligned, kept between calls.
struct PackBuffer {
    uint32_t* data = nullptr;
    size_t size = 0;
    ~PackBuffer() { std::free(data); }
    uint32_t* get(size_t n) {
        if (n > size) {
            std::free(data);
            size = (n + 15) / 16 * 16;
            data = static_cast<uint32_t*>(std::aligned_alloc(64, size * 4));
            if (!data) throw std::bad_alloc();
        }
        return data;
    }
};
thread_local PackBuffer a_buffer, b_buffer;

TG_BF16_TARGET inline __mmask16 lanes(int64_t n) {
    return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// float32 bits -> the same rounded to bfloat16 (to_bf16) in the upper 16 bits; the lower 16 are not
// cleared.
TG_BF16_TARGET inline __m512i round_upper(__m512i u) {
    const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7f800000));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    return _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
}

// Lane j: bfloat16(lo[j]) in the lower half, bfloat16(hi[j]) in the upper (k's elements 2p, 2p+1).
TG_BF16_TARGET inline __m512i pair_lanes(__m512i lo, __m512i hi) {
    return _mm512_or_si512(_mm512_srli_epi32(round_upper(lo), 16),
                           _mm512_and_si512(round_upper(hi), _mm512_set1_epi32(int(0xffff0000u))));
}

// 16 consecutive float32 (pairs 2q, 2q+1 in each 64-bit lane) -> 8 bfloat16 pairs.
TG_BF16_TARGET inline __m256i pair_adjacent(__m512i x) {
    const __m512i r = round_upper(x);
    const __m512i v = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(r, 16), _mm512_set1_epi64(0xffff)),
                                      _mm512_and_si512(_mm512_srli_epi64(r, 32), _mm512_set1_epi64(0xffff0000)));
    return _mm512_cvtepi64_epi32(v);
}

// Pairs from two rows of a matrix, each contiguous along the packed index: out[q] pairs row0[q]
// and row1[q] for q < count (<= 16); row1 may be null (past the end of k: zeros).
TG_BF16_TARGET inline void pack_across(const float* row0, const float* row1, int64_t count, uint32_t* out) {
    if (count == 16) {
        const __m512i lo = _mm512_loadu_si512(row0);
        const __m512i hi = row1 ? _mm512_loadu_si512(row1) : _mm512_setzero_si512();
        _mm512_storeu_si512(out, pair_lanes(lo, hi));
        return;
    }
    const __mmask16 m = lanes(count);
    const __m512i lo = _mm512_maskz_loadu_epi32(m, row0);
    const __m512i hi = row1 ? _mm512_maskz_loadu_epi32(m, row1) : _mm512_setzero_si512();
    _mm512_mask_storeu_epi32(out, m, pair_lanes(lo, hi));
}

// Pairs along one contiguous row of `len` elements of k (from its start): pair p goes to
// out[p * stride], for p < (len + 1) / 2.
TG_BF16_TARGET inline void pack_along(const float* row, int64_t len, uint32_t* out, int64_t stride) {
    alignas(64) uint32_t tmp[16];
    for (int64_t e = 0; e < len; e += 32) {
        const int64_t n = std::min<int64_t>(32, len - e);
        const __m256i p0 = pair_adjacent(_mm512_maskz_loadu_epi32(lanes(n), row + e));
        const __m256i p1 = pair_adjacent(_mm512_maskz_loadu_epi32(lanes(n - 16), row + e + 16));
        _mm512_store_si512(tmp, _mm512_inserti64x4(_mm512_castsi256_si512(p0), p1, 1));
        const int64_t pairs = (n + 1) / 2;
        uint32_t* o = out + (e / 2) * stride;
        for (int64_t p = 0; p < pairs; ++p) o[p * stride] = tmp[p];
    }
}

// r[j][p] -> r[p][j]: a 16 x 16 transpose of 32-bit words in registers (pairs within 128-bit lanes,
// then pairs of pairs, then the 128-bit lanes as a 4 x 4).
TG_BF16_TARGET inline void transpose16(__m512i r[16]) {
    __m512i a[16], b[16];
    for (int i = 0; i < 8; ++i) {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {  // b[4i + q], lane L: column 4L + q of rows 4i .. 4i + 3
        b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    for (int q = 0; q < 4; ++q) {
        const __m512i u0 = _mm512_shuffle_i32x4(b[q], b[4 + q], 0x44), u1 = _mm512_shuffle_i32x4(b[q], b[4 + q], 0xee);
        const __m512i u2 = _mm512_shuffle_i32x4(b[8 + q], b[12 + q], 0x44),
                      u3 = _mm512_shuffle_i32x4(b[8 + q], b[12 + q], 0xee);
        r[q] = _mm512_shuffle_i32x4(u0, u2, 0x88);
        r[4 + q] = _mm512_shuffle_i32x4(u0, u2, 0xdd);
        r[8 + q] = _mm512_shuffle_i32x4(u1, u3, 0x88);
        r[12 + q] = _mm512_shuffle_i32x4(u1, u3, 0xdd);
    }
}

// 16 rows (row stride ld) each contiguous along k, `len` elements from `first`: pair p of row j goes
// to out[p * stride + j], 16 rows at once through transpose16.
TG_BF16_TARGET void pack_along16(const float* first, int64_t ld, int64_t len, uint32_t* out, int64_t stride) {
    __m512i r[16];
    for (int64_t e = 0; e < len; e += 32) {
        const int64_t n = std::min<int64_t>(32, len - e), pairs = (n + 1) / 2;
        const __mmask16 m0 = lanes(n), m1 = lanes(n - 16);
        for (int j = 0; j < 16; ++j) {
            const float* row = first + j * ld + e;
            if (j + 1 < 16) _mm_prefetch(reinterpret_cast<const char*>(row + ld + 32), _MM_HINT_T0);
            const __m256i p0 = pair_adjacent(_mm512_maskz_loadu_epi32(m0, row));
            const __m256i p1 = pair_adjacent(_mm512_maskz_loadu_epi32(m1, row + 16));
            r[j] = _mm512_inserti64x4(_mm512_castsi256_si512(p0), p1, 1);
        }
        transpose16(r);
        uint32_t* o = out + (e / 2) * stride;
        for (int64_t p = 0; p < pairs; ++p) _mm512_storeu_si512(o + p * stride, r[p]);
    }
}

// `count` rows (row stride ld) each contiguous along k, `len` elements from `first`: pair p of row
// j goes to out[p * stride + j]. 16 rows at a time through transpose16 where a panel is that wide
// (op(B)'s), the rest one by one, each next row fetched while this one is packed: the rows are
// read in pieces of 2 kp floats, each in a new place (packing nn.Linear's W^T, the loads waited on
// memory for 2/3 of the time).
TG_BF16_TARGET void pack_rows_along(const float* first, int64_t ld, int64_t count, int64_t len, uint32_t* out,
                                    int64_t stride) {
    int64_t j = 0;
    if (stride >= 16)
        for (; j + 16 <= count; j += 16) pack_along16(first + j * ld, ld, len, out + j, stride);
    for (; j < count; ++j) {
        if (j + 1 < count) {
            const char* next = reinterpret_cast<const char*>(first + (j + 1) * ld);
            for (int64_t off = 0; off < len * 4; off += 64) _mm_prefetch(next + off, _MM_HINT_T0);
        }
        pack_along(first + j * ld, len, out + j, stride);
    }
}

// op(B)'s rows [k0, k0 + 2 kp) and columns [j0, j0 + nc) into panels of NR columns: panel q holds
// word (p, j) at q kp NR + p NR + j. Columns past nc and rows past k are zeros (kp covers k to its
// end or to the block's, so only the columns can be short).
TG_BF16_TARGET void pack_b(bool tb, const float* b, int64_t ldb, int64_t k, int64_t k0, int64_t kp, int64_t j0,
                           int64_t nc, uint32_t* dst) {
    if (tb) {  // op(B)[kk][j] = b[j ldb + kk]: each column contiguous along k
        const int64_t len = std::min(2 * kp, k - k0);
        for (int64_t q = 0; q < nc; q += NR) {
            uint32_t* panel = dst + (q / NR) * kp * NR;
            const int64_t cols = std::min(NR, nc - q);
            if (cols < NR) std::memset(panel, 0, static_cast<size_t>(kp * NR * 4));
            pack_rows_along(b + (j0 + q) * ldb + k0, ldb, cols, len, panel, NR);
        }
        return;
    }
    // op(B)[kk][j] = b[kk ldb + j]: rows contiguous along j, read a pair of whole rows at a time (a
    // panel at a time read 2 kp rows in short pieces: 1.3x slower on the MNIST layer's product).
    if (nc % NR) std::memset(dst + (nc / NR) * kp * NR, 0, static_cast<size_t>(kp * NR * 4));
    for (int64_t p = 0; p < kp; ++p) {
        const int64_t r = k0 + 2 * p;
        const float* row0 = b + r * ldb + j0;
        const float* row1 = r + 1 < k ? row0 + ldb : nullptr;
        for (int64_t q = 0; q < nc; q += 16) {
            uint32_t* out = dst + (q / NR) * kp * NR + p * NR + q % NR;
            pack_across(row0 + q, row1 ? row1 + q : nullptr, std::min<int64_t>(16, nc - q), out);
        }
    }
}

// op(A)'s rows [i0, i0 + mc) and k's [k0, k0 + 2 kp) into panels of MR rows: panel r holds word
// (p, i) at r kp MR + p MR + i. Rows past mc and k past its end are zeros.
TG_BF16_TARGET void pack_a(bool ta, const float* a, int64_t lda, int64_t k, int64_t k0, int64_t kp, int64_t i0,
                           int64_t mc, uint32_t* dst) {
    const int64_t len = std::min(2 * kp, k - k0);
    for (int64_t q = 0; q < mc; q += MR) {
        uint32_t* panel = dst + (q / MR) * kp * MR;
        const int64_t rows = std::min(MR, mc - q);
        if (rows < MR) std::memset(panel, 0, static_cast<size_t>(kp * MR * 4));
        if (ta)  // op(A)[i][kk] = a[kk lda + i]: the stored rows run along i
            for (int64_t p = 0; p < kp; ++p) {
                const int64_t r = k0 + 2 * p;
                const float* row0 = a + r * lda + i0 + q;
                pack_across(row0, r + 1 < k ? row0 + lda : nullptr, rows, panel + p * MR);
            }
        else  // op(A)[i][kk] = a[i lda + kk]: rows contiguous along k
            pack_rows_along(a + (i0 + q) * lda + k0, lda, rows, len, panel, MR);
    }
}

// One MR x NR tile: sums over kp pairs, then C = alpha sum + (first block ? beta C : C) on the
// tile's `rows` x `cols` corner (beta == 0 on the first block does not read C).
TG_BF16_TARGET void tile(int64_t kp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int64_t csc,
                         int64_t rows, int64_t cols, float alpha, float beta, bool first) {
    // C's tile is cold (the whole of C went by since its last block): its lines are fetched while
    // the sums run, not after (a quarter of the layer's product time waited on them).
    for (int64_t i = 0; i < rows; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (int64_t p = 0; p < kp; ++p, a += MR, b += NR) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#define TG_ROW(i)                                                                  \
    {                                                                              \
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));   \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, ai, b0);                               \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, ai, b1);                               \
    }
        TG_ROW(0) TG_ROW(1) TG_ROW(2) TG_ROW(3) TG_ROW(4) TG_ROW(5) TG_ROW(6) TG_ROW(7)
#undef TG_ROW
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(first ? beta : 1.0f);
    const bool read = !first || beta != 0.0f;
    const __mmask16 m0 = lanes(cols), m1 = lanes(cols - 16);
    const __m512 sums[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                                {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
    if (csc != 1) {  // C transposed (bf16_gemm swapped the operands): element by element
        alignas(64) float t[NR];
        for (int64_t i = 0; i < rows; ++i) {
            _mm512_store_ps(t, _mm512_mul_ps(va, sums[i][0]));
            _mm512_store_ps(t + 16, _mm512_mul_ps(va, sums[i][1]));
            for (int64_t j = 0; j < cols; ++j) {
                float& cij = c[i * ldc + j * csc];
                cij = read ? t[j] + (first ? beta : 1.0f) * cij : t[j];
            }
        }
        return;
    }
    if (cols == NR) {  // a whole tile: no masks
        for (int64_t i = 0; i < rows; ++i) {
            float* ci = c + i * ldc;
            __m512 v0 = _mm512_mul_ps(va, sums[i][0]), v1 = _mm512_mul_ps(va, sums[i][1]);
            if (read) {
                v0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), v0);
                v1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), v1);
            }
            _mm512_storeu_ps(ci, v0);
            _mm512_storeu_ps(ci + 16, v1);
        }
        return;
    }
    for (int64_t i = 0; i < rows; ++i) {
        float* ci = c + i * ldc;
        __m512 v0 = _mm512_mul_ps(va, sums[i][0]), v1 = _mm512_mul_ps(va, sums[i][1]);
        if (read) {
            v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), v0);
            v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), v1);
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}

// Tiles computed (padding included) for an m x n C.
constexpr int64_t padded(int64_t m, int64_t n) { return (m + MR - 1) / MR * MR * ((n + NR - 1) / NR * NR); }

// C (row stride ldc, column stride csc) = alpha op(A) op(B) + beta C, on this thread.
TG_BF16_TARGET void native_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                                int64_t csc) {
    // k in blocks of equal size, as few as KP allows: each block adds its sums into C once more.
    const int64_t pairs = (k + 1) / 2, kblocks = (pairs + KP - 1) / KP;
    const int64_t kp_max = (pairs + kblocks - 1) / kblocks;
    uint32_t* bp = b_buffer.get(static_cast<size_t>(kp_max * ((std::min(NC, n) + NR - 1) / NR * NR)));
    uint32_t* ap = a_buffer.get(static_cast<size_t>(kp_max * ((std::min(MC, m) + MR - 1) / MR * MR)));
    for (int64_t jc = 0; jc < n; jc += NC) {
        const int64_t nc = std::min(NC, n - jc);
        for (int64_t pc = 0; pc < pairs; pc += kp_max) {
            const int64_t kp = std::min(kp_max, pairs - pc), k0 = 2 * pc;
            pack_b(tb, b, ldb, k, k0, kp, jc, nc, bp);
            for (int64_t ic = 0; ic < m; ic += MC) {
                const int64_t mc = std::min(MC, m - ic);
                pack_a(ta, a, lda, k, k0, kp, ic, mc, ap);
                for (int64_t jr = 0; jr < nc; jr += NR)
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        tile(kp, ap + (ir / MR) * kp * MR, bp + (jr / NR) * kp * NR, c + (ic + ir) * ldc + (jc + jr) * csc,
                             ldc, csc, std::min(MR, mc - ir), std::min(NR, nc - jr), alpha, beta, pc == 0);
            }
        }
    }
}

// A large product on the engine's threads: C in blocks of rows or columns (whole tiles), each block
// one native_gemm; each element of C is summed in the same order however it is split.
void split_native(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int64_t csc) {
    const bool rows = m >= n;
    parallel_blocks(rows ? m : n, rows ? MR : NR, [&](int64_t first, int64_t size) {
        if (rows)
            native_gemm(ta, tb, size, n, k, alpha, ta ? a + first : a + first * lda, lda, b, ldb, beta,
                        c + first * ldc, ldc, csc);
        else
            native_gemm(ta, tb, m, size, k, alpha, a, lda, tb ? b + first * ldb : b + first, ldb, beta,
                        c + first * csc, ldc, csc);
    });
}

#endif  // TG_BF16_KERNEL

}  // namespace

void set_bf16_products(bool on) { products_on.store(on, std::memory_order_relaxed); }
bool bf16_products() { return products_on.load(std::memory_order_relaxed); }

std::string bf16_kernel() { return use_native.load(std::memory_order_relaxed) ? "avx512_bf16" : "emulated"; }

void set_bf16_kernel(const std::string& name) {
    if (name == "emulated") use_native.store(false);
    else if (name == "avx512_bf16" && cpu_bf16) use_native.store(true);
    else if (name == "avx512_bf16")
        throw std::invalid_argument("set_bf16_kernel: this CPU has no AVX512_BF16 instructions");
    else throw std::invalid_argument("set_bf16_kernel: expected 'avx512_bf16' or 'emulated', got '" + name + "'");
}

void bf16_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Fp32Gemm fp32_gemm) {
    if (m == 0 || n == 0) return;
#ifdef TG_BF16_KERNEL
    if (use_native.load(std::memory_order_relaxed) && k > 0) {
        // A narrow C (the 10 classes of a last layer) fills a tile NR wide by a third; C^T =
        // op(B)^T op(A)^T has those columns as rows, MR a tile. Its tiles are written element by
        // element, so only when that saves a quarter of the work (3136 x 784 would save 2%, and ran
        // at half the speed). Decided before splitting, so that the threads split the wide side.
        int64_t csc = 1;
        if (4 * padded(n, m) < 3 * padded(m, n)) {
            std::swap(m, n);
            std::swap(a, b);
            std::swap(lda, ldb);
            const bool t = ta;
            ta = !tb;
            tb = !t;
            csc = ldc;
            ldc = 1;
        }
        if (m * n * k >= kSplitMin && std::max(m, n) >= 64 && pool_threads() > 1)
            split_native(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, csc);
        else
            native_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, csc);
        return;
    }
#endif
    emulated_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, fp32_gemm);
}

}  // namespace tg
