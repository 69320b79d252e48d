// Float32 matrix products with bfloat16 operands: the opt-in mixed-precision mode
// (set_float32_matmul_precision("medium") in Python, as PyTorch's function of that name).
//
// Each operand is rounded to bfloat16 (8 significant bits, round to nearest even) and the products
// are summed in float32; the tensors, and so the parameters an optimiser updates (the "master
// weights"), stay float32. Where the CPU has AVX512_BF16 (Intel Cooper Lake and Sapphire Rapids,
// AMD Zen 4 and later) the operands are packed as bfloat16 pairs and multiplied with VDPBF16PS,
// twice as many multiply-adds per instruction as float32 FMAs, from half the memory. Elsewhere
// the rounded operands are multiplied by the float32 product (the BLAS): the same rounding of the
// operands, no gain in speed. VDPBF16PS treats subnormal operands as zero and flushes subnormal
// results, whatever set_flush_denormal says.
#pragma once

#include <cstdint>
#include <string>

namespace tg {

// Whether float32 products of at least kBf16MinWork multiply-adds take bfloat16 operands.
void set_bf16_products(bool on);
bool bf16_products();
constexpr int64_t kBf16MinWork = 32 * 32 * 32;

// Which kernel runs them: "avx512_bf16" (the CPU has it) or "emulated" (operands rounded, then
// the float32 product). set_bf16_kernel("emulated") forces the second (for tests and comparisons);
// "avx512_bf16" on a CPU without it throws std::invalid_argument.
std::string bf16_kernel();
void set_bf16_kernel(const std::string& name);

// C = alpha op(A) op(B) + beta C with bfloat16-rounded operands, as gemm() (gemm.h) otherwise: row-
// major, op(A) m x k, op(B) k x n; beta == 0 does not read C. `fp32_gemm` is the float32 product the
// emulated kernel calls on the rounded copies.
using Fp32Gemm = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
void bf16_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Fp32Gemm fp32_gemm);

// The rounding the operands take: float32 -> the nearest bfloat16, ties to even, NaN kept NaN
// (quiet); the result is the bfloat16's bits (the float32's upper 16).
inline uint16_t to_bf16(uint32_t bits) {
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits | 0x00400000u) >> 16);
    return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace tg
