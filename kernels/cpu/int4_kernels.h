// Int4-weight x int8-activation GEMV / GEMM (any number of activation rows), ggml q4 x q8 style.
//
// Each public kernel has a scalar `_ref` and an `_avx2` twin with the same signature. Without
// AVX2+FMA+F16C at compile time the `_avx2` names are the reference (see the bottom of this file),
// so callers never need their own #if ladder.
//
// Activations are quantized once per call, per row and per block of CG_Q4_ACT_BLOCK (32) inputs, to
// int8 with da = absmax / 127 (round half to even, never -128), stored in the order of the weight
// codes (cg_q4_act_pos). Then for output n and activation row m, with b the 32-input blocks:
//   y[m, n] = bias[n] + sum_b d[g(b)] * da[m, b] * (sum_{k in b} q[k] * qa[m, k]  -  z[g(b)] * asum[m, b])
// where asum[m, b] = sum_{k in b} qa[m, k]. The inner sums are exact integers (u8 x s8 pairs).
#pragma once

#include <stdint.h>

#include "int4_layout.h"

// Quantized activation rows, as the GEMV kernels read them.
typedef struct {
    const int8_t* qa;    // [M, K] in kernel order (cg_q4_act_pos)
    const float* da;     // [M, K / 32]   per-block scale
    const float* asum;   // [M, K / 32]   per-block sum of qa (an exact integer held in a float)
} cg_q8_act;

// x [M, K] fp32 (K % 32 == 0) -> qa [M, K] in kernel order, da [M, K / 32], asum [M, K / 32]
void cg_q8_quantize_rows_ref(const float* x, int64_t M, int64_t K, int8_t* qa, float* da, float* asum);
void cg_q8_quantize_rows_avx2(const float* x, int64_t M, int64_t K, int8_t* qa, float* da, float* asum);

// y[m * ldy + n] for m < M and n0 <= n < n1; bias may be NULL.
void cg_q4_gemm_rows_ref(const cg_q8_act* act, int64_t M, const uint8_t* packed, int64_t K, int64_t G,
                         int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy);
void cg_q4_gemm_rows_avx2(const cg_q8_act* act, int64_t M, const uint8_t* packed, int64_t K, int64_t G,
                          int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy);

// out[(n - n0) * K + k] = w[n, k] for n0 <= n < n1 (float32, exact: d * small integer).
void cg_q4_dequant_rows_ref(const uint8_t* packed, int64_t K, int64_t G, int64_t n0, int64_t n1, float* out);
void cg_q4_dequant_rows_avx2(const uint8_t* packed, int64_t K, int64_t G, int64_t n0, int64_t n1, float* out);

// IEEE binary16 bits -> float, exact, portable.
float cg_fp16_to_fp32(uint16_t h);

// Whether the running CPU can execute the _avx2 twins.
bool cg_cpu_has_avx2(void);

#if !(defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
#define CG_Q4_NO_AVX2 1
#define cg_q8_quantize_rows_avx2 cg_q8_quantize_rows_ref
#define cg_q4_gemm_rows_avx2 cg_q4_gemm_rows_ref
#define cg_q4_dequant_rows_avx2 cg_q4_dequant_rows_ref
#endif
