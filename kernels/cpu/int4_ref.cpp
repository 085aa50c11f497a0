// Scalar reference kernels: the spec the SIMD twins are tested against. Plain loops, no intrinsics;
// every index goes through the layout functions of int4_layout.h. This file is compiled without any
// -m flag (setup.py), so the extension loads and this path runs on any CPU.
#include <math.h>
#include <string.h>

#include "cpu/int4_kernels.h"

float cg_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: value = man * 2^-24, exact in fp32
            const float v = (float)man * 5.9604644775390625e-8f;
            memcpy(&bits, &v, 4);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

bool cg_cpu_has_avx2(void) {
#if defined(CG_Q4_X86_SIMD)
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }();
    return has;
#else
    return false;
#endif
}

bool cg_cpu_has_avx512(void) {
#if defined(CG_Q4_X86_SIMD)
    // libgcc's table checks XCR0 too, so an OS that does not save the AVX-512 state reports false
    static const bool has = [] {
        __builtin_cpu_init();
        return cg_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    }();
    return has;
#else
    return false;
#endif
}

void cg_q8_quantize_rows_ref(const float* x, int64_t M, int64_t K, int8_t* qa, float* da, float* asum) {
    const int64_t nb = K / CG_Q4_ACT_BLOCK;
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t b = 0; b < nb; ++b) {
            const float* xs = x + m * K + b * CG_Q4_ACT_BLOCK;
            float amax = 0.0f;
            for (int64_t k = 0; k < CG_Q4_ACT_BLOCK; ++k) amax = fmaxf(amax, fabsf(xs[k]));
            const float d = amax / 127.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            int32_t s = 0;
            for (int64_t k = 0; k < CG_Q4_ACT_BLOCK; ++k) {
                const int32_t q = (int32_t)nearbyintf(xs[k] * id);  // default rounding: half to even
                qa[m * K + cg_q4_act_pos(K, b * CG_Q4_ACT_BLOCK + k)] = (int8_t)q;
                s += q;
            }
            da[m * nb + b] = d;
            asum[m * nb + b] = (float)s;
        }
    }
}

static inline int32_t q4_code(const uint8_t* row, int64_t K, int64_t k) {
    return (row[cg_q4_byte(K, k)] >> cg_q4_shift(K, k)) & 0x0f;
}

void cg_q4_gemm_rows_ref(const cg_q8_act* act, int64_t M, const uint8_t* packed, const uint8_t* residual, int64_t K,
                         int64_t G, int64_t n0, int64_t n1, const float* bias, float* y, int64_t ldy) {
    const int64_t nb = K / CG_Q4_ACT_BLOCK;
    const int n_planes = residual ? 2 : 1;
    for (int64_t n = n0; n < n1; ++n) {
        for (int64_t m = 0; m < M; ++m) {
            float acc = 0.0f;
            for (int p = 0; p < n_planes; ++p) {
                const uint8_t* plane = p ? residual : packed;
                const uint8_t* row = plane + n * cg_q4_row_bytes(K, G);
                const cg_q4_row r = cg_q4_row_at(plane, n, K, G);
                for (int64_t b = 0; b < nb; ++b) {
                    int32_t isum = 0;
                    for (int64_t k = b * CG_Q4_ACT_BLOCK; k < (b + 1) * CG_Q4_ACT_BLOCK; ++k) {
                        isum += q4_code(row, K, k) * act->qa[m * K + cg_q4_act_pos(K, k)];
                    }
                    const int64_t g = b * CG_Q4_ACT_BLOCK / G;
                    const float cs = cg_fp16_to_fp32(r.d[g]) * act->da[m * nb + b];
                    acc += cs * ((float)isum - (float)r.z[g] * act->asum[m * nb + b]);
                }
            }
            y[m * ldy + n] = acc + (bias ? bias[n] : 0.0f);
        }
    }
}

void cg_q4_dequant_rows_ref(const uint8_t* packed, int64_t K, int64_t G, int64_t n0, int64_t n1, float* out) {
    for (int64_t n = n0; n < n1; ++n) {
        const uint8_t* row = packed + n * cg_q4_row_bytes(K, G);
        const cg_q4_row r = cg_q4_row_at(packed, n, K, G);
        float* o = out + (n - n0) * K;
        for (int64_t k = 0; k < K; ++k) {
            const int64_t g = k / G;
            o[k] = cg_fp16_to_fp32(r.d[g]) * (float)(q4_code(row, K, k) - (int32_t)r.z[g]);
        }
    }
}
