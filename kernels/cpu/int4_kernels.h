// Int4-weight x int8-activation GEMV / GEMM (any number of activation rows), ggml q4 x q8 style.
//
// Three paths with the same signatures, all in one build, picked at run time (int4_ops.cpp):
//   _ref     scalar loops, compiled without any SIMD flag: the spec, and what runs on any CPU;
//   _avx2    AVX2 + FMA + F16C (maddubs dot products);
//   _avx512  AVX-512 F/BW/VL + VNNI (vpdpbusd dot products, 32 vector registers for wider tiles).
// The SIMD twins are compiled from one body (int4_simd_body.h) under `#pragma GCC target`, so the
// global compile flags carry no -m options and nothing outside those functions may use the ISA.
// They exist on x86-64 with GCC or Clang (CG_Q4_X86_SIMD); elsewhere only the reference does.
//
// Activations are quantized once per call, per row and per block of CG_Q4_ACT_BLOCK (32) inputs, to
// int8 with da = absmax / 127 (round half to even, never -128), stored in the order of the weight
// codes (cg_q4_act_pos). Then for output n and activation row m, with b the 32-input blocks:
//   y[m, n] = bias[n] + sum_b d[g(b)] * da[m, b] * (sum_{k in b} q[k] * qa[m, k]  -  z[g(b)] * asum[m, b])
// where asum[m, b] = sum_{k in b} qa[m, k] (plus the same sum over a residual plane's q, d, z when one
// is given). The inner sums are exact integers (u8 x s8 pairs).
#pragma once

#include <stdint.h>

#include "int4_layout.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define CG_Q4_X86_SIMD 1
#endif

// Quantized activation rows, as the GEMV kernels read them.
typedef struct {
    const int8_t* qa;    // [M, K] in kernel order (cg_q4_act_pos)
    const float* da;     // [M, K / 32]   per-block scale
    const float* asum;   // [M, K / 32]   per-block sum of qa (an exact integer held in a float)
} cg_q8_act;

// x [M, K] fp32 (K % 32 == 0) -> qa [M, K] in kernel order, da [M, K / 32], asum [M, K / 32]
#define CG_Q8_QUANTIZE_ROWS_SIG(name) \
    void name(const float* x, int64_t M, int64_t K, int8_t* qa, float* da, float* asum)
// y[m * ldy + n] for m < M and n0 <= n < n1; bias may be NULL. With a `residual` plane (NULL: none),
// W = W1 + W2: both planes' terms go into one accumulator per output, so a second plane costs no
// second pass over the outputs, no second quantization of the activations and no add.
#define CG_Q4_GEMM_ROWS_SIG(name)                                                                     \
    void name(const cg_q8_act* act, int64_t M, const uint8_t* packed, const uint8_t* residual, int64_t K, \
              int64_t G, int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy)
// out[(n - n0) * K + k] = w[n, k] for n0 <= n < n1 (float32, exact: d * small integer).
#define CG_Q4_DEQUANT_ROWS_SIG(name) \
    void name(const uint8_t* packed, int64_t K, int64_t G, int64_t n0, int64_t n1, float* out)

CG_Q8_QUANTIZE_ROWS_SIG(cg_q8_quantize_rows_ref);
CG_Q4_GEMM_ROWS_SIG(cg_q4_gemm_rows_ref);
CG_Q4_DEQUANT_ROWS_SIG(cg_q4_dequant_rows_ref);

#if defined(CG_Q4_X86_SIMD)
CG_Q8_QUANTIZE_ROWS_SIG(cg_q8_quantize_rows_avx2);
CG_Q4_GEMM_ROWS_SIG(cg_q4_gemm_rows_avx2);
CG_Q4_DEQUANT_ROWS_SIG(cg_q4_dequant_rows_avx2);

CG_Q8_QUANTIZE_ROWS_SIG(cg_q8_quantize_rows_avx512);
CG_Q4_GEMM_ROWS_SIG(cg_q4_gemm_rows_avx512);
CG_Q4_DEQUANT_ROWS_SIG(cg_q4_dequant_rows_avx512);
#endif

// IEEE binary16 bits -> float, exact, portable.
float cg_fp16_to_fp32(uint16_t h);

// Whether the running CPU (and OS) can execute each path; false where the path is not compiled.
bool cg_cpu_has_avx2(void);
bool cg_cpu_has_avx512(void);
